package wire

import (
	"fmt"
	"unsafe"

	"github.com/vmihailenco/msgpack/v5"
)

// Columns are the bulk of trainfeed's traffic, so they have a hand-written
// codec. It writes the same msgpack map the struct tags describe (and
// docs/wire.md documents), without reflection per value.

var (
	_ msgpack.CustomEncoder = (*Column)(nil)
	_ msgpack.CustomDecoder = (*Column)(nil)
)

// EncodeMsgpack writes c as a map of its non-empty fields.
func (c *Column) EncodeMsgpack(enc *msgpack.Encoder) error {
	n := 2
	for _, set := range []bool{len(c.Nulls) > 0, len(c.Ints) > 0, len(c.Floats) > 0, len(c.Bools) > 0, len(c.Strings) > 0} {
		if set {
			n++
		}
	}
	if err := enc.EncodeMapLen(n); err != nil {
		return err
	}
	if err := encodeKV(enc, "name", c.Name); err != nil {
		return err
	}
	if err := encodeKV(enc, "type", string(c.Type)); err != nil {
		return err
	}
	if len(c.Nulls) > 0 {
		if err := encodeBools(enc, "nulls", c.Nulls); err != nil {
			return err
		}
	}
	if len(c.Ints) > 0 {
		if err := enc.EncodeString("ints"); err != nil {
			return err
		}
		if err := enc.EncodeArrayLen(len(c.Ints)); err != nil {
			return err
		}
		for _, v := range c.Ints {
			if err := enc.EncodeInt(v); err != nil {
				return err
			}
		}
	}
	if len(c.Floats) > 0 {
		if err := enc.EncodeString("floats"); err != nil {
			return err
		}
		if err := enc.EncodeArrayLen(len(c.Floats)); err != nil {
			return err
		}
		for _, v := range c.Floats {
			if err := enc.EncodeFloat64(v); err != nil {
				return err
			}
		}
	}
	if len(c.Bools) > 0 {
		if err := encodeBools(enc, "bools", c.Bools); err != nil {
			return err
		}
	}
	if len(c.Strings) > 0 {
		if err := enc.EncodeString("strings"); err != nil {
			return err
		}
		if err := enc.EncodeArrayLen(len(c.Strings)); err != nil {
			return err
		}
		for _, v := range c.Strings {
			if err := enc.EncodeString(v); err != nil {
				return err
			}
		}
	}
	return nil
}

func encodeKV(enc *msgpack.Encoder, key, value string) error {
	if err := enc.EncodeString(key); err != nil {
		return err
	}
	return enc.EncodeString(value)
}

func encodeBools(enc *msgpack.Encoder, key string, vs []bool) error {
	if err := enc.EncodeString(key); err != nil {
		return err
	}
	if err := enc.EncodeArrayLen(len(vs)); err != nil {
		return err
	}
	for _, v := range vs {
		if err := enc.EncodeBool(v); err != nil {
			return err
		}
	}
	return nil
}

// DecodeMsgpack reads a column map; unknown keys are skipped so newer
// writers can add fields.
func (c *Column) DecodeMsgpack(dec *msgpack.Decoder) error {
	n, err := dec.DecodeMapLen()
	if err != nil {
		return err
	}
	for range n {
		key, err := dec.DecodeString()
		if err != nil {
			return err
		}
		switch key {
		case "name":
			c.Name, err = dec.DecodeString()
		case "type":
			var t string
			t, err = dec.DecodeString()
			c.Type = Type(t)
		case "nulls":
			c.Nulls, err = decodeBools(dec)
		case "bools":
			c.Bools, err = decodeBools(dec)
		case "ints":
			var l int
			if l, err = arrayLen(dec); err == nil && l > 0 {
				c.Ints = make([]int64, l)
				for i := range c.Ints {
					if c.Ints[i], err = dec.DecodeInt64(); err != nil {
						break
					}
				}
			}
		case "floats":
			var l int
			if l, err = arrayLen(dec); err == nil && l > 0 {
				c.Floats = make([]float64, l)
				for i := range c.Floats {
					if c.Floats[i], err = dec.DecodeFloat64(); err != nil {
						break
					}
				}
			}
		case "strings":
			c.Strings, err = decodeStrings(dec)
		default:
			err = dec.Skip()
		}
		if err != nil {
			return fmt.Errorf("column %q: %s: %w", c.Name, key, err)
		}
	}
	return nil
}

// stringArena is the size of the blocks decodeStrings copies values into.
const stringArena = 64 << 10

// decodeStrings reads an array of strings. The values are copied into
// shared blocks rather than allocated one by one: a record batch holds
// thousands of short strings, and an allocation each is most of the cost
// of decoding it and of collecting it afterwards. The blocks are never
// written again once a string points into them.
func decodeStrings(dec *msgpack.Decoder) ([]string, error) {
	l, err := arrayLen(dec)
	if err != nil || l == 0 {
		return nil, err
	}
	vs := make([]string, l)
	var block []byte
	for i := range vs {
		n, err := dec.DecodeBytesLen()
		if err != nil {
			return nil, err
		}
		if n <= 0 { // nil or empty
			continue
		}
		if n > cap(block)-len(block) {
			block = make([]byte, 0, max(stringArena, n))
		}
		start := len(block)
		block = block[:start+n]
		if err := dec.ReadFull(block[start:]); err != nil {
			return nil, err
		}
		vs[i] = unsafe.String(&block[start], n)
	}
	return vs, nil
}

// arrayLen reads an array header; nil counts as empty.
func arrayLen(dec *msgpack.Decoder) (int, error) {
	l, err := dec.DecodeArrayLen()
	if err != nil {
		return 0, err
	}
	if l < 0 {
		return 0, nil
	}
	return l, nil
}

func decodeBools(dec *msgpack.Decoder) ([]bool, error) {
	l, err := arrayLen(dec)
	if err != nil || l == 0 {
		return nil, err
	}
	vs := make([]bool, l)
	for i := range vs {
		if vs[i], err = dec.DecodeBool(); err != nil {
			return nil, err
		}
	}
	return vs, nil
}
