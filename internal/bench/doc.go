// Package bench measures mediastack's fast paths against netstack's own
// paths and the Linux kernel, in one run, and reports each comparison as a
// ratio taken within that run. `mediastack bench` is its command line; the
// README's Benchmarks section shows a run.
//
// # What it measures
//
// The in-process suite (no syscalls, no root) runs the same frames and
// payloads through each path on an in-memory link: receive (a frame in at
// the link, the payload out of a fastfilter Ring or a gonet socket), send
// (a payload in, the frame out of udpfast or gonet WriteTo) and reflect
// (both), for 172- and 1200-byte payloads over IPv4 and IPv6. The scaling
// suite runs the fast reflector with 1 to 10,000 concurrent streams. The
// real-link suite (Config.Link, root) puts a load generator in a network
// namespace and finds, for the fast reflector and the gonet reflector in
// this process on a TAP or AF_PACKET link and for a reflector on Linux's own
// UDP sockets, the highest rate reflected with under 0.1% loss, and the
// round-trip time at a fixed moderate rate.
//
// # How
//
// A Suite is a table: a list of Workloads, the columns it shows and the
// ratios it compares. A Workload has the same name on every Path it runs
// over; Open prepares it on one path and returns a Bench, whose Round
// measures once. The runner opens every path of a workload, runs their
// rounds interleaved (so drift on a shared machine hits all alike), takes
// the median of each figure and computes the suite's ratios from the
// medians. Packet workloads are Loops: a round runs the calibrated number of
// packets after a GC, timed, then counts heap allocations in a pass of its
// own as testing.AllocsPerRun does.
//
// # Adding a suite
//
// Write a func returning a Suite (Name, Title, Workloads, Columns, Ratios,
// and Rounds when a round is long), add it to Suites, and give its rows a
// workload prefix of their own ("tcp-..."). Workloads returns a done func
// for what they share (a namespace, a helper process). Anything the command
// line must set goes in Config, with a flag in cmd/mediastack/bench.go.
//
// The real-link suite runs its helpers (the load generator and the kernel
// reflector) as `mediastack bench-helper NAME` inside the namespaces it
// makes: Config.Helper says how to start this program, and RunHelper is
// what the hidden subcommand calls.
package bench
