package localserver

import (
	"errors"

	"github.com/secrets-prefetch/secrets-prefetch/source"
)

// extractJSONKey applies jsonKey to a value, reporting failures as bad
// requests (400) with the source's codes.
func extractJSONKey(doc []byte, key string) ([]byte, error) {
	v, err := source.JSONKey(doc, key)
	var je *source.JSONKeyError
	if errors.As(err, &je) {
		return nil, badRequest(je.Code, je.Message)
	}
	return v, err
}
