// Package p2sp delivers media files for instant messaging the way seed 002
// describes (docs/design.md, "P2SP media file delivery"): a P2SP server (a web
// server that is also the BitTorrent web seed, and a file-info server that
// holds each file's record, metainfo and peer list), clients whose media
// manager fetches over HTTP and BitTorrent at once, verifies and caches, and
// peers that keep seeding what they fetched.
//
// This package holds what every part shares: file ids and records, the
// failure report and its answer, the metainfo rule, and Network, which says
// where a node's sockets live (the host's stack or mediastack's). The parts
// are in sub-packages: origin (web server and file-info server), tracker
// (the BitTorrent announce handler), media (media types, durations and the
// playability check), playback (hand a file to a player or send it as RTP),
// client (media manager, cache, verification) and the command wiring in
// cmd/mediastack.
//
// p2sp is its own Go module so that users of the stack and the fast paths do
// not inherit BitTorrent's dependency graph. It uses
// github.com/anacrolix/torrent v1.62.0 with uTP, DHT, LPD, PEX, WebTorrent
// and port forwarding off; the go-utp module that version requires is
// replaced by third_party/go-utp-none (BUILD.md says why).
package p2sp
