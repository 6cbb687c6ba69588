package source

import (
	"bytes"
	"encoding/json"
	"io"

	"github.com/secrets-prefetch/secrets-prefetch/internal/names"
)

// JSONKeyError says why JSONKey could not answer. Code is ValueNotJSON or
// JSONKeyNotFound; the message never includes the document, only the key.
type JSONKeyError struct {
	Code, Message string
}

func (e *JSONKeyError) Error() string { return e.Code + ": " + e.Message }

// JSONKey returns the value of a top-level key of the JSON object doc (a
// secret's or parameter's value): a string as its text, anything else as its
// JSON. The last of duplicate keys wins, as in most JSON parsers. A nil doc
// is a binary value. Both the HTTP API's jsonKey and the zero-code mappings'
// #key use it, so they answer alike.
func JSONKey(doc []byte, key string) ([]byte, error) {
	notJSON := func(msg string) error { return &JSONKeyError{"ValueNotJSON", msg} }
	if doc == nil {
		return nil, notJSON("the value is binary, not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, notJSON("the value is not a JSON object")
	}
	var found json.RawMessage
	seen := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, notJSON("the value is not a valid JSON object")
		}
		k, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, notJSON("the value is not a valid JSON object")
		}
		if k == key {
			found, seen = raw, true
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, notJSON("the value is not a valid JSON object")
	}
	// Only the end may follow; a syntax error here is data after the object too.
	if _, err := dec.Token(); err != io.EOF {
		return nil, notJSON("the value has data after its JSON object")
	}
	if !seen {
		return nil, &JSONKeyError{"JSONKeyNotFound", "the value has no top-level key " + names.Quote(key)}
	}
	if len(found) > 0 && found[0] == '"' {
		var s string
		if err := json.Unmarshal(found, &s); err != nil {
			return nil, notJSON("the value is not a valid JSON object")
		}
		return []byte(s), nil
	}
	return []byte(found), nil
}
