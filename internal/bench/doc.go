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
// The relay suite (`--only relay`, root) measures whole media relays, each
// a process of its own so its CPU time can be read, relaying K calls for
// the load generator in relay mode: mediastack's (`mediastack serve
// --rtp-ports --listen-ng`, the calls made over its ng port as a SIP proxy
// makes them) on a TAP and on AF_PACKET on a veth end, a relay on
// netstack's gonet sockets in a process on a TAP, a plain Go relay on
// Linux's UDP sockets, and, when installed, rtpengine in userspace mode
// (`--table=-1`), its calls made over ng too (internal/rtpengine). Each
// call is two legs, two sockets of the generator's that send RTP-like
// datagrams (172 bytes, a sequence number and the send time) to the relay's
// two ports, and receive what the relay forwards from the other leg. The
// rows, each a median of Config.LinkRounds rounds, with the paths of a
// workload interleaved and their order alternated:
//
//   - relay/RATE/K: K calls (1, 50, 500, 5,000) at a fixed offered rate
//     (10k and 40k datagrams/s over all legs) for 5 s;
//   - relay/search/K: the highest rate relayed with under 0.1% loss and a
//     one-way p99 under 10 ms (the real-link suite's search, 1 s steps);
//   - relay/burst/K: 200k datagrams/s for 3 s, then the calls at 10k/s:
//     the dead calls (a leg that got nothing in the first second after)
//     and the loss in the second after that (0 when the relay is back);
//   - relay/idle/10000: 10,000 calls set up and silent for 5 s.
//
// The columns: relay µs/pkt is the relay process's CPU time, all threads
// (/proc/PID/task/*/schedstat), per datagram relayed (received by the
// generator); +gen adds the generator's, which is where the kernel charges
// much of the UDP work of delivering to it (and, for the relays on Linux's
// sockets, some of their receive path: compare both); cs/pkt the relay's
// voluntary and involuntary context switches (/proc/PID/task/*/status)
// per datagram relayed; relay CPU % its CPU time over the step's (the idle
// row's figure); p50/p99/p999 the one-way delay, generator to relay to
// generator on one clock, less the same percentile of the wire row (no
// relay: the relay's namespace routes the legs' datagrams to each other as
// a router would), so what the relay adds (percentiles do not subtract
// exactly: the tails are rough); loss % the datagrams that did not arrive.
// The ratios are each relay's against rtpengine's in the same run
// ("× rtpengine", above 1 is better). With --short: 50 calls, 10k/s,
// 300 ms steps, 500 idle calls.
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
// what the hidden subcommand calls. The relay suite runs the generator and
// the plain relays (HelperRelay) the same way, and mediastack's relay as
// `mediastack serve`.
package bench
