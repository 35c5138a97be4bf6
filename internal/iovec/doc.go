// Package iovec does scatter-gather I/O on a descriptor without
// allocating: x/sys/unix's Readv and Writev build their iovec arrays anew on
// every call, an allocation per packet on a link's hot path. The links
// (link/tap, link/raw) keep an []unix.Iovec as scratch and pass it here.
package iovec
