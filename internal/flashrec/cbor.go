package flashrec

import "github.com/fxamacker/cbor/v2"

// The CBOR codec of the small records kept with this package: core
// deterministic encoding; decoding with tight limits (nesting 4, 16 array
// elements, 16 map pairs, no duplicate keys, no indefinite lengths, no
// tags, valid UTF-8, no trailing bytes).
var (
	decMode cbor.DecMode
	encMode cbor.EncMode
)

func init() {
	var err error
	decMode, err = cbor.DecOptions{
		DupMapKey: cbor.DupMapKeyEnforcedAPF, IndefLength: cbor.IndefLengthForbidden,
		MaxNestedLevels: 4, MaxArrayElements: 16, MaxMapPairs: 16,
		TagsMd: cbor.TagsForbidden, UTF8: cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic(err) // constant options: a bug, not input
	}
	if encMode, err = cbor.CoreDetEncOptions().EncMode(); err != nil {
		panic(err)
	}
}

// Marshal encodes v deterministically.
func Marshal(v any) ([]byte, error) { return encMode.Marshal(v) }

// Unmarshal decodes b into v within the limits.
func Unmarshal(b []byte, v any) error { return decMode.Unmarshal(b, v) }
