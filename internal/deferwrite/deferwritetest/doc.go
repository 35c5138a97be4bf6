// Package deferwritetest holds the kernel tests every link with deferred
// writes (internal/deferwrite) runs: link/tap and link/raw call its
// scenarios from their own tests with a Case over their device and the
// kernel's side of it.
package deferwritetest
