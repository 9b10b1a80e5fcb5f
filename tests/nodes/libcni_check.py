#!/usr/bin/python3
"""libcni_check.py CONTAINER_ID [IFNAME]: CNI CHECK of a podman container's network the way
libcni's CheckNetworkList (containernetworking/cni v1.1, the libcni in podman 4.3) sends it, for
the node lab (tests/nodes/podman_cni_test.sh): podman 4.3 links CheckNetworkList but no command of
it calls it, so this replays it from libcni's own cache of the ADD
(/var/lib/cni/results/<network>-<id>-<ifname>: the conflist, CNI_ARGS, capability args and the
chain's final result). Each plugin of the conflist, in order, gets CNI_COMMAND=CHECK with the
ADD's CNI_* values and, on stdin, its own entry plus the list's name and cniVersion, prevResult
(the cached result) and runtimeConfig (the capabilities the entry declares). Like libcni, it
refuses a conflist below cniVersion 0.4.0. Prints "<type> CHECK ok" or "<type> CHECK failed:
<its error JSON>" per plugin; exits 1 if any failed."""
import base64, glob, json, os, subprocess, sys

cid = sys.argv[1]
ifname = sys.argv[2] if len(sys.argv) > 2 else "eth0"
paths = glob.glob(f"/var/lib/cni/results/*-{cid}-{ifname}")
if len(paths) != 1:
    sys.exit(f"libcni_check: no libcni cache for {cid}/{ifname}: {paths}")
cache = json.load(open(paths[0]))
conf = json.loads(base64.b64decode(cache["config"]))
version = conf["cniVersion"]
if tuple(int(x) for x in version.split(".")) < (0, 4, 0):
    sys.exit(f'libcni_check: configuration version "{version}" does not support the CHECK command')
result = cache["result"]
netns = next(i["sandbox"] for i in result["interfaces"] if i.get("sandbox"))
env = dict(os.environ, CNI_COMMAND="CHECK", CNI_CONTAINERID=cid, CNI_NETNS=netns,
           CNI_IFNAME=ifname, CNI_PATH="/usr/lib/cni",
           CNI_ARGS=";".join(f"{k}={v}" for k, v in cache.get("cniArgs") or []))
rc = 0
for plugin in conf["plugins"]:
    net = dict(plugin, name=conf["name"], cniVersion=version, prevResult=result)
    caps = {k: cache["capabilityArgs"][k] for k, on in plugin.get("capabilities", {}).items()
            if on and k in (cache.get("capabilityArgs") or {})}
    if caps:
        net["runtimeConfig"] = caps
    p = subprocess.run([f"/usr/lib/cni/{plugin['type']}"], input=json.dumps(net).encode(),
                       env=env, capture_output=True)
    out = p.stdout.decode().strip().replace("\n", " ")
    print(f"{plugin['type']} CHECK {'ok' if p.returncode == 0 else 'failed: ' + out}")
    rc = rc or (p.returncode != 0)
sys.exit(rc)
