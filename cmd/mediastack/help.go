package main

// The topics of each command's --help. Every flag a command registers must
// be in one of its groups: TestHelpListsEveryFlagInAGroup fails otherwise.

var serveHelp = commandHelp{
	required: []string{"link", "addr"},
	groups: []flagGroup{
		{"link and addresses", []string{"link", "addr", "gateway", "mac", "mtu", "vlan", "share-host-address"}},
		{"media ports and relays", []string{"rtp-ports", "reflect", "relay", "dscp", "arp-aging", "arp-refresh"}},
		{"calls: timeouts and endpoint learning", []string{"timeout", "silent-timeout", "final-timeout", "endpoint-learning", "strict-source"}},
		{"control and metrics", []string{"control", "metrics", "control-token", "control-token-file"}},
		{"signalling (rtpengine's ng protocol)", []string{"listen-ng", "max-calls"}},
		{"P2SP file delivery on the stack (fetches on --control)", serveP2SPFlags},
		{"TCP offload and HTTP", []string{"tcp-offload", "http-root", "http-port"}},
		{"diagnostics", []string{"echo", "pcap", "log-level", "log-format"}},
	},
}

var demoHelp = commandHelp{
	groups: []flagGroup{
		{"simulation", []string{"duration", "seed"}},
		{"network", []string{"loss", "delay"}},
		{"traffic", []string{"tcp-bytes", "rtp-streams"}},
		{"output", []string{"pcap"}},
	},
}

var benchHelp = commandHelp{
	groups: []flagGroup{
		{"what to run", []string{"only", "rows", "rounds", "short", "streams", "relays"}},
		{"real link", []string{"link", "link-rounds", "fast-reflector"}},
		{"output", []string{"json", "plot", "quiet"}},
	},
}

var p2spOriginHelp = commandHelp{
	required: []string{"dir", "web", "info"},
	groups: []flagGroup{
		{"what to publish", []string{"dir", "http-only"}},
		{"the two servers", []string{"web", "info", "web-url", "info-url"}},
		{"on mediastack's stack (without --link: the host's)", nodeLinkFlags},
		{"diagnostics", []string{"log-level", "log-format"}},
	},
}

var p2spFetchHelp = commandHelp{
	required: []string{"origin", "cache", "listen"},
	groups: []flagGroup{
		{"the origin, the cache and BitTorrent", managerFlags},
		{"playback", []string{"play", "player", "play-verified", "rtp-port"}},
		{"output", []string{"progress", "json", "timeout"}},
		{"on mediastack's stack (without --link: the host's)", nodeLinkFlags},
		{"diagnostics", []string{"log-level", "log-format"}},
	},
}

var p2spPeerHelp = commandHelp{
	required: []string{"origin", "cache", "listen"},
	groups: []flagGroup{
		{"the origin, the cache and BitTorrent", managerFlags},
		{"on mediastack's stack (without --link: the host's)", nodeLinkFlags},
		{"diagnostics", []string{"log-level", "log-format"}},
	},
}

var demoP2SPHelp = commandHelp{
	groups: []flagGroup{
		{"the simulated LAN", []string{"peers", "rate", "ipv6", "seed"}},
		{"the files", []string{"size"}},
		{"limits", []string{"timeout"}},
	},
}
