// Package requestid makes the request ids of the bare servers (HTTP and gRPC) for a request that
// brought none, as anyroute does for its x-request-id: 32 hex digits. The servers share it so
// that each baseline pays the same for an id.
package requestid

import (
	"encoding/hex"
	"math/rand/v2"
)

// New returns a new id of 32 hex digits.
func New() string {
	var b [16]byte
	for i := range 2 {
		v := rand.Uint64()
		for j := range 8 {
			b[i*8+j] = byte(v >> (8 * j))
		}
	}
	return hex.EncodeToString(b[:])
}
