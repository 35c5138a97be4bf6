//go:build !amd64

package csum

const vectorBlock = 4

const haveVector = false

func sumVector([]byte) uint64 { panic("csum: no vector sum on this architecture") }

func copySumVector(_, _ []byte) uint64 { panic("csum: no vector sum on this architecture") }
