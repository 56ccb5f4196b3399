package main

import (
	"net"
	"net/url"
	"slices"
)

// pullName is a name to pull through the daemon, and who can use it.
type pullName struct {
	Ref string
	For string
}

// vmHostNames are the names by which the VM engines of macOS and Windows
// reach the host's loopback from inside their VM. The local handler
// answers to them there (they are reserved .internal names, no rebound
// public name).
func vmHostNames(goos string) []string {
	switch goos {
	case "darwin":
		return []string{"host.docker.internal", "host.lima.internal", "host.containers.internal"}
	case "windows":
		return []string{"host.docker.internal", "host.containers.internal"}
	}
	return nil
}

// pullNames are the names that pull busybox through the daemon on this
// machine: the local address for clients on the host (and Docker on
// Linux, whose daemon shares the host's loopback); on macOS and Windows,
// where the engine runs in a VM and 127.0.0.1 inside it is the VM, the
// names each engine gives the host; and the tunnel's name, which works
// from anywhere over https with no setting.
func pullNames(goos, listen, tunnelURL string) []pullName {
	const repo = "/library/busybox"
	_, port, err := net.SplitHostPort(listen)
	var out []pullName
	local := "clients on this machine (docker, podman, crane, skopeo)"
	if slices.Contains([]string{"darwin", "windows"}, goos) {
		local = "clients on this machine itself (crane, skopeo); not a VM engine's, whose 127.0.0.1 is the VM"
	}
	out = append(out, pullName{listen + repo, local})
	if err == nil {
		for _, h := range vmHostNames(goos) {
			var who string
			switch h {
			case "host.docker.internal":
				who = "Docker Desktop (list it in insecure-registries; see the README)"
			case "host.lima.internal":
				who = "Colima, Rancher Desktop (Lima VMs; list it as an insecure registry)"
			case "host.containers.internal":
				who = "Podman machine (podman pull --tls-verify=false)"
			}
			out = append(out, pullName{net.JoinHostPort(h, port) + repo, who})
		}
	}
	if u, err := url.Parse(tunnelURL); err == nil && u.Host != "" {
		out = append(out, pullName{u.Host + repo, "any engine, any machine: https through the tunnel, no setting"})
	}
	return out
}
