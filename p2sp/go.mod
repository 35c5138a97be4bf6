module github.com/mediastack/mediastack/p2sp

go 1.26.3

require (
	github.com/anacrolix/torrent v1.62.0
	github.com/mediastack/mediastack v0.0.0-00010101000000-000000000000
)

require (
	github.com/anacrolix/generics v0.2.0 // indirect
	github.com/anacrolix/missinggo v1.3.0 // indirect
	github.com/anacrolix/missinggo/v2 v2.11.0 // indirect
	github.com/google/btree v1.1.2 // indirect
	github.com/huandu/xstrings v1.3.2 // indirect
	github.com/klauspost/cpuid/v2 v2.2.3 // indirect
	github.com/minio/sha256-simd v1.0.0 // indirect
	github.com/mr-tron/base58 v1.2.0 // indirect
	github.com/multiformats/go-multihash v0.2.3 // indirect
	github.com/multiformats/go-varint v0.0.6 // indirect
	github.com/spaolacci/murmur3 v1.1.0 // indirect
	github.com/stretchr/testify v1.12.1 // indirect
	golang.org/x/crypto v0.57.0 // indirect
	golang.org/x/exp v0.0.0-20251113190631-e25ba8c21ef6 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/time v0.15.0 // indirect
	gvisor.dev/gvisor v0.0.0-20260905035102-160fafc42237 // indirect
	lukechampine.com/blake3 v1.1.6 // indirect
)

replace (
	// anacrolix/torrent v1.62.0 requires go-utp, which the module proxy refuses:
	// a stand-in without uTP (third_party/go-utp-none/README.md).
	github.com/anacrolix/go-utp => ../third_party/go-utp-none
	// The stack, from the same repository.
	github.com/mediastack/mediastack => ../
)
