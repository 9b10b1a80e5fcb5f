#!/usr/bin/env python3
"""Lists the longest function definitions of the project's sources (core, stores, backends,
daemon), by brace counting: a definition starts at column 0 with a '(' and its signature ends with '{' (a
member function of a nested class is counted as part of its class). Rough, but the same measure
before and after a change:  scripts/long_functions.py [N]   (default 15; run at the root)."""
import re
import subprocess
import sys

LITERALS = re.compile(r"'(?:\\.|[^'\\])'|\"(?:\\.|[^\"\\])*\"")
SKIP = ('//', '#', 'namespace', '}', 'struct', 'class', 'using', 'static_assert', 'extern')


def braces(line):
    code = LITERALS.sub('', line.split('//')[0])
    return code.count('{') - code.count('}')


def signature_end(lines, i):
    """The line ending the signature that starts at line i (column 0), or None."""
    for k in range(i, min(i + 6, len(lines))):
        text = lines[k].split('//')[0].rstrip()
        if text.endswith(';'):
            return None
        if text.endswith('{') or ('{' in text and braces(text) == 0):
            return k
    return None


def functions(path):
    lines = open(path, encoding='utf-8').read().split('\n')
    i = 0
    while i < len(lines):
        line = lines[i]
        k = None
        if (line and not line[0].isspace() and not line.startswith(SKIP) and '(' in line
                and '=' not in line.split('(')[0]):
            k = signature_end(lines, i)
        if k is None:
            i += 1
            continue
        depth, j = 0, i
        while j < len(lines):
            depth += braces(lines[j])
            if depth <= 0 and j >= k:
                break
            j += 1
        yield j - i + 1, f'{path}:{i + 1}', line.split('(')[0].split()[-1]
        i = j + 1


def main():
    top = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    files = subprocess.check_output(['git', 'ls-files', 'core', 'stores', 'backends', 'daemon'],
                                    text=True).split()
    found = sorted((f for p in files if p.endswith('.cc') for f in functions(p)), reverse=True)
    for n, where, name in found[:top]:
        print(f'{n:4} {where} {name}')
    print(f'over 80 lines: {sum(n > 80 for n, _, _ in found)}, '
          f'over 60: {sum(n > 60 for n, _, _ in found)}, of {len(found)} functions')


if __name__ == '__main__':
    main()
