package cache

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/secrets-prefetch/secrets-prefetch/source"
)

func TestInvalidate(t *testing.T) {
	bubble(t, "drops what matches, only that", func(t *testing.T) {
		h := newHarness(t, nil)
		other := source.SecretKey("other")
		h.mustGet(secret, Miss)
		h.mustGet(other, Miss)
		n := h.c.Invalidate(func(k source.Key, it *source.Item) bool { return it != nil && it.Name == secret.ID })
		if n != 1 || h.has(secret) || !h.has(other) {
			t.Fatalf("Invalidate dropped %d; has %s %t, %s %t", n, secret, h.has(secret), other, h.has(other))
		}
		// The next read fetches again: a write is read back.
		if r := h.mustGet(secret, Miss); text(r) != itemText(secret, 2) {
			t.Fatalf("read after Invalidate: %q", text(r))
		}
		h.mustGet(other, Hit)
	})
	bubble(t, "a fetch in flight answers its readers but is not kept", func(t *testing.T) {
		h := newHarness(t, nil)
		release := h.hold("one")
		early := h.goGet(context.Background(), secret, false)
		synctest.Wait()
		if n := h.c.Invalidate(func(k source.Key, _ *source.Item) bool { return k == secret }); n != 1 {
			t.Fatalf("Invalidate of an entry in flight dropped %d", n)
		}
		release()
		synctest.Wait()
		if o := ready(t, early); o.err != nil || text(o.r) != itemText(secret, 1) {
			t.Fatalf("the read that began before: %q %v", text(o.r), o.err)
		}
		if r := h.mustGet(secret, Miss); text(r) != itemText(secret, 2) {
			t.Fatalf("a read after Invalidate got %q, want a fetch of its own", text(r))
		}
	})
}
