// Package zerocode puts secrets and parameters where code that was never
// written for this extension finds them: environment variables set by an
// exec wrapper in front of the runtime (SECRETS_PREFETCH_ENV), and files
// under /tmp kept up to date by the extension (SECRETS_PREFETCH_FILES). The
// mapping syntax is package mapping's.
//
// Values never reach a log or an error: names, entries and error codes do.
package zerocode

import (
	"encoding/json"
	"errors"

	"github.com/secrets-prefetch/secrets-prefetch/source"
	"github.com/secrets-prefetch/secrets-prefetch/zerocode/mapping"
)

// ValueError is a value that cannot be used for its entry: not JSON while a
// JSON key was asked for, binary for a variable, and so on. Code names the
// problem the way the HTTP API's error codes do; Message never holds a value.
type ValueError struct {
	Code    string
	Message string
}

func (e *ValueError) Error() string { return e.Code + ": " + e.Message }

// Key is the cache key an entry reads: a secret's current version, or a
// parameter (at its selector) decrypted, as the HTTP API's reads with
// withDecryption=true use, so the wrapper's reads hit what prefetch stored.
func Key(e mapping.Entry) source.Key {
	if e.Kind == mapping.Secret {
		return source.SecretKey(e.ID)
	}
	k := source.ParameterKey(e.ID)
	if e.Selector != "" {
		k.Selector = ":" + e.Selector
	}
	return k
}

// Keys lists the distinct keys the entries read, in order.
func Keys(mappings ...[]mapping.Entry) []source.Key {
	var keys []source.Key
	seen := map[source.Key]bool{}
	for _, m := range mappings {
		for _, e := range m {
			if k := Key(e); !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	return keys
}

// raw is an item's value as the API renders it: text (SecretString or a
// parameter's Value) or, for a binary secret, its bytes.
type raw struct {
	data   []byte
	binary bool
}

// itemValue reads the value out of a cached item. A string value may be
// the item's own bytes (not to be modified); a binary secret is decoded
// from the body.
func itemValue(it *source.Item) (raw, error) {
	if text, ok := it.StringValue(); ok {
		return raw{data: text}, nil
	}
	return bodyValue(it.Key.Service, it.Body)
}

// bodyValue reads the value out of an API response body (the GetSecretValue
// or GetParameter JSON).
func bodyValue(svc source.Service, body []byte) (raw, error) {
	if svc == source.ParameterStore {
		var p struct{ Parameter struct{ Value *string } }
		if err := json.Unmarshal(body, &p); err != nil || p.Parameter.Value == nil {
			return raw{}, &ValueError{"UnexpectedResponse", "the parameter response has no Value"}
		}
		return raw{data: []byte(*p.Parameter.Value)}, nil
	}
	var s struct {
		SecretString *string
		SecretBinary []byte // base64 in JSON
	}
	if err := json.Unmarshal(body, &s); err != nil {
		return raw{}, &ValueError{"UnexpectedResponse", "the secret response is not valid JSON"}
	}
	if s.SecretString != nil {
		return raw{data: []byte(*s.SecretString)}, nil
	}
	return raw{data: s.SecretBinary, binary: true}, nil
}

// pick applies the entry's JSON key, if any. The result may share memory
// with v.data.
func pick(v raw, e mapping.Entry) ([]byte, error) {
	if e.JSONKey == "" {
		return v.data, nil
	}
	if v.binary {
		return nil, &ValueError{"ValueNotJSON", "the value is binary, not a JSON object"}
	}
	out, err := source.JSONKey(v.data, e.JSONKey)
	var je *source.JSONKeyError
	if errors.As(err, &je) {
		return nil, &ValueError{je.Code, je.Message}
	}
	return out, err
}
