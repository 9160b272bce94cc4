package broker

import (
	"fmt"
	"math"
	"reflect"
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// A non-flexible response encodes a string with an int16 length: one of
// more than math.MaxInt16 bytes would have its length wrap, and the client
// would read the rest of the response from the middle of the string. A
// request's own strings cannot be that long (their length is an int16
// too), but a response can carry longer ones: an error message quoting a
// name of 32,767 bytes, or a name a flexible request (compact, varint
// lengths) stored, listed by a non-flexible one.
//
// fitResponseStrings, run on a non-flexible response that encoded to more
// than math.MaxInt16 bytes (so that it could hold such a string), cuts
// error messages to the largest length that fits — the error code is what
// clients act on — and returns an error for any other string too long, a
// name the client asked for: Kafka fails to serialize that response, and
// the connection is closed. It reports whether it cut a message.
func fitResponseStrings(resp kmsg.Response) (cut bool, err error) {
	return fitStrings(reflect.ValueOf(resp).Elem(), "")
}

func fitStrings(v reflect.Value, name string) (cut bool, err error) {
	switch v.Kind() {
	case reflect.String:
		if v.Len() <= math.MaxInt16 {
			return false, nil
		}
		if name == "ErrorMessage" {
			v.SetString(truncateMessage(v.String(), math.MaxInt16))
			return true, nil
		}
		return false, fmt.Errorf("response field %s of %d bytes is longer than a non-flexible version can encode", name, v.Len())
	case reflect.Pointer:
		if v.IsNil() {
			return false, nil
		}
		return fitStrings(v.Elem(), name)
	case reflect.Struct:
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			c, err := fitStrings(v.Field(i), f.Name)
			if err != nil {
				return false, err
			}
			cut = cut || c
		}
	case reflect.Slice:
		if !holdsStrings(v.Type().Elem()) {
			return false, nil // []byte, []int32, partitions of numbers only
		}
		for i := range v.Len() {
			c, err := fitStrings(v.Index(i), name)
			if err != nil {
				return false, err
			}
			cut = cut || c
		}
	}
	return cut, nil
}

// stringTypes caches holdsStrings (reflect.Type → bool).
var stringTypes sync.Map

// holdsStrings reports whether a value of type t can hold a string, so
// that the entries of a large response (a Metadata's partitions) that
// cannot are not walked one by one.
func holdsStrings(t reflect.Type) bool {
	if known, ok := stringTypes.Load(t); ok {
		return known.(bool)
	}
	var holds bool
	switch t.Kind() {
	case reflect.String:
		holds = true
	case reflect.Pointer, reflect.Slice:
		holds = holdsStrings(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if f := t.Field(i); f.IsExported() && holdsStrings(f.Type) {
				holds = true
				break
			}
		}
	}
	stringTypes.Store(t, holds)
	return holds
}

// truncateMessage cuts msg to at most n bytes, on a UTF-8 boundary.
func truncateMessage(msg string, n int) string {
	const ellipsis = "..."
	if len(msg) <= n {
		return msg
	}
	end := n - len(ellipsis)
	for end > 0 && msg[end]&0xC0 == 0x80 { // inside a UTF-8 sequence
		end--
	}
	return msg[:end] + ellipsis
}
