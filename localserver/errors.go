package localserver

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/secrets-prefetch/secrets-prefetch/cache"
	"github.com/secrets-prefetch/secrets-prefetch/source"
)

// statusOf maps an error to its HTTP status and code: the one place where
// the extension's failures become statuses.
func statusOf(err error) (int, string, string) {
	var (
		rerr *requestError
		serr *source.Error
	)
	switch {
	case errors.As(err, &rerr):
		return http.StatusBadRequest, rerr.code, rerr.msg
	case errors.Is(err, cache.ErrNotConfigured):
		return http.StatusNotFound, "NotConfigured", "the item is not configured for prefetch and lazy fetching is off (SECRETS_PREFETCH_LAZY=false)"
	case errors.Is(err, cache.ErrBusy):
		return http.StatusTooManyRequests, "TooManyRequests", "too many items are being fetched at once; try again shortly"
	case errors.Is(err, cache.ErrClosed):
		return http.StatusServiceUnavailable, "ShuttingDown", "the extension is shutting down"
	case errors.As(err, &serr):
		msg := serr.Message
		if msg == "" {
			msg = "AWS returned " + serr.Code
		}
		switch serr.Class {
		case source.ClassNotFound:
			return http.StatusNotFound, serr.Code, msg
		case source.ClassAccessDenied:
			return http.StatusForbidden, serr.Code, msg
		case source.ClassInvalid:
			return http.StatusBadRequest, serr.Code, msg
		case source.ClassTimeout:
			return http.StatusGatewayTimeout, serr.Code, msg
		default:
			return http.StatusBadGateway, serr.Code, msg
		}
	}
	return http.StatusInternalServerError, "InternalError", "unexpected error"
}

func writeErr(w http.ResponseWriter, r *http.Request, err error) int {
	status, code, msg := statusOf(err)
	return writeError(w, r, status, code, msg)
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// writeError writes {"error":{"code":...,"message":...}} with status.
func writeError(w http.ResponseWriter, r *http.Request, status int, code, msg string) int {
	var b errorBody
	b.Error.Code, b.Error.Message = code, msg
	body, _ := json.Marshal(b)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Del("X-Cache")
	h.Del("Age")
	h.Del(RegionHeader)
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
	return status
}
