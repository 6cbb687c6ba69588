package localserver

import (
	"bytes"
	"encoding/json"
	"io"
)

// extractJSONKey returns the value of a top-level key of a JSON object: a
// string as its raw text, anything else as its JSON. It reports errors as
// request errors whose messages never include the document.
func extractJSONKey(doc []byte, key string) ([]byte, error) {
	if doc == nil {
		return nil, badRequest("ValueNotJSON", "the value is binary, not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, badRequest("ValueNotJSON", "the value is not a JSON object")
	}
	var found json.RawMessage
	seen := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, badRequest("ValueNotJSON", "the value is not a valid JSON object")
		}
		k, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, badRequest("ValueNotJSON", "the value is not a valid JSON object")
		}
		if k == key {
			found, seen = raw, true // the last duplicate wins, as in most JSON parsers
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, badRequest("ValueNotJSON", "the value is not a valid JSON object")
	}
	// Only the end may follow; a syntax error here is data after the object too.
	if _, err := dec.Token(); err != io.EOF {
		return nil, badRequest("ValueNotJSON", "the value has data after its JSON object")
	}
	if !seen {
		return nil, &requestError{code: "JSONKeyNotFound", msg: "the value has no top-level key " + quoteName(key)}
	}
	if len(found) > 0 && found[0] == '"' {
		var s string
		if err := json.Unmarshal(found, &s); err != nil {
			return nil, badRequest("ValueNotJSON", "the value is not a valid JSON object")
		}
		return []byte(s), nil
	}
	return []byte(found), nil
}
