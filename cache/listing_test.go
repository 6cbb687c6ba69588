package cache

import (
	"context"
	"testing"

	"github.com/secrets-prefetch/secrets-prefetch/source"
)

func TestExpireAll(t *testing.T) {
	h := newHarness(t, nil)
	a, b := source.SecretKey("a"), source.SecretKey("b")
	h.c.Prefetch(context.Background(), []source.Key{a, b}, nil)
	h.mustGet(a, Hit)
	h.c.ExpireAll()
	// Within the TTL on the clock, yet fetched again.
	h.mustGet(a, Miss)
	// Due for refresh at once; and if AWS fails, the old value is not
	// served even within the stale bound.
	h.f.fail(b, source.ClassTransient)
	if rep := h.c.RefreshDue(context.Background()); rep.Due != 1 {
		t.Errorf("RefreshDue after ExpireAll: %+v, want b due", rep)
	}
	if r, err := h.get(b); err == nil {
		t.Errorf("b after a failed refresh = %s, want the error, not the snapshot's value", r.Status)
	}
}

func TestStoreFoundAndForget(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Lazy = false })
	k := source.ParameterKey("/app/x")
	h.c.StoreFound(k, &source.Item{Key: k, Body: []byte(`{}`)})
	h.mustGet(k, Hit)
	h.c.Forget(k)
	if h.has(k) {
		t.Error("Forget left the entry")
	}
	if _, err := h.get(k); err != ErrNotConfigured {
		t.Errorf("after Forget: %v, want ErrNotConfigured (not listed, lazy off)", err)
	}
}
