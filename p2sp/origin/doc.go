// Package origin is the P2SP server (seed 002, component 200): the web
// server (210) that serves published media files over HTTP and is their
// BitTorrent web seed (BEP 19), and the file-info server (220) that holds
// each file's record and metainfo and runs the tracker. The two answer on
// separate listeners (claim 4: clients can ask the file-info server
// directly); the web server asks the file-info server directly for what it
// relays (claim 1), in process or, with Options.InfoClient, over HTTP.
//
// Plug it in:
//
//	webL, _ := network.Listen(netip.MustParseAddrPort("198.51.100.10:8080")) // a p2sp.Network: host or our stack
//	infoL, _ := network.Listen(netip.MustParseAddrPort("198.51.100.11:8081"))
//	o, err := origin.New(origin.Options{Dir: "media", WebURL: "http://198.51.100.10:8080", InfoURL: "http://198.51.100.11:8081"})
//	err = o.Serve(ctx, webL, infoL) // or mount o.WebHandler() and o.InfoHandler() yourself
//
// Every regular file of Dir is published at New: its id is the SHA-256 of
// its bytes, its name the id plus its extension, its record carries the
// media type and duration (p2sp/media) and, unless Options.NoP2P says the
// file goes HTTP only, a v1 torrent whose url-list is WebURL+"/files/" and
// whose announce is InfoURL+"/announce".
//
// The web server (WebHandler):
//
//	GET|HEAD /files/{id} and /files/{id}{ext}   the bytes; Range, 206, 416, ETag "{id}"
//	GET /p2p/{id}                               the Record, from the file-info server; 404 without P2P info
//	GET /p2p/{id}.torrent                       the metainfo (application/x-bittorrent)
//	POST /reports                               a p2sp.Report -> p2sp.ReportAnswer
//
// The file-info server (InfoHandler):
//
//	GET /files/{id}             the Record (404 if unknown or without P2P info)
//	GET /files/{id}.torrent     the metainfo
//	GET /announce               the tracker (p2sp/tracker)
//	POST /files/{id}/status     {"status","notice"}: the web server's verdict when it runs elsewhere
//	GET /healthz                {"ok":true,"files":N}
//
// Errors are JSON: {"error": "..."}. Stats counts requests by route, file
// bytes sent, 206 answers and reports; Options.WebRate caps the web
// server's file bytes per second.
//
// A report is judged against the origin's own copy, which a client cannot
// see: the origin re-hashes it (a copy that no longer matches its id means
// the origin is at fault: damaged), checks that it plays (it does not:
// damaged), and a client that found the verified bytes unplayable makes
// the file damaged too (those bytes are the origin's). Otherwise the origin
// is intact and a peer sent bad data: the file stays ok and the answer says
// so. A damaged file's later records carry the status and the notice.
package origin
