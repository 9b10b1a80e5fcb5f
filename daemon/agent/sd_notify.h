// systemd readiness notification (sd_notify protocol): one datagram to $NOTIFY_SOCKET.
// A leading '@' in the socket path means the abstract namespace. No-op when the variable is
// unset, so flanneld runs the same outside systemd.
#pragma once

#include <string>

namespace flannel {

// Sends `state` (e.g. "READY=1") to the socket named by NOTIFY_SOCKET. Returns false and fills
// *error (if given) if the variable is set but sending failed; true when sent or when not under
// systemd, *error then untouched.
bool sd_notify(const std::string& state, std::string* error = nullptr);

}  // namespace flannel
