// Package pollread reads a descriptor on a thread parked in poll(2), outside
// Go's netpoller: the link readers (link/tap, link/raw) use it so that a
// frame arriving alone wakes exactly one thread, the reader's.
//
// Through the netpoller, each lone frame costs the Go scheduler a round
// trip: the thread asleep in epoll_wait wakes, hands the reader goroutine a
// P, and, leaving the spinning state, wakes a second thread to look for
// work that is not there; when the reader parks again its thread polls
// epoll once more before it sleeps. At 10,000 frames a second over a TAP
// that was 1.6 voluntary context switches and 7 system calls per relayed
// frame (docs/design.md has the figures). A reader in a blocking poll(2)
// is one thread asleep in one system call: the frame wakes it, it reads,
// handles the frame to completion and sleeps again; Go's scheduler only
// sees a system call return.
//
// To plug it in: take the descriptor out of the netpoller with Unpoll (a
// descriptor left registered would still wake the netpoller's thread on
// every frame), then read with Poller.Read from the one reader goroutine,
// and call Poller.Wake before closing the descriptor so that a reader
// parked in poll returns. The descriptor stays non-blocking: the read
// callback drains it until EAGAIN, and writes through its RawConn never
// wait (a callback returning false cannot be parked outside the poller).
package pollread
