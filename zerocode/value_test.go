package zerocode

import (
	"bytes"
	"testing"

	"github.com/secrets-prefetch/secrets-prefetch/source"
	"github.com/secrets-prefetch/secrets-prefetch/zerocode/mapping"
)

func TestValues(t *testing.T) {
	secret := mapping.Entry{Kind: mapping.Secret, ID: "s"}
	withKey := mapping.Entry{Kind: mapping.Secret, ID: "s", JSONKey: "k"}
	param := mapping.Entry{Kind: mapping.Parameter, ID: "/p", Selector: "3"}

	if k := Key(param); k != (source.Key{Service: source.ParameterStore, ID: "/p", Selector: ":3", Decrypt: true}) {
		t.Errorf("Key(param) = %+v", k)
	}
	if k := Key(secret); k != source.SecretKey("s") {
		t.Errorf("Key(secret) = %+v", k)
	}
	if ks := Keys([]mapping.Entry{secret, withKey}, []mapping.Entry{param, secret}); len(ks) != 2 {
		t.Errorf("Keys = %v, want the two distinct keys", ks)
	}

	bin, err := bodyValue(source.SecretsManager, []byte(`{"SecretBinary":"AAEC/w==","SecretString":null}`))
	if err != nil || !bin.binary || !bytes.Equal(bin.data, []byte{0, 1, 2, 255}) {
		t.Errorf("binary body = %+v, %v", bin, err)
	}
	if _, err := pick(bin, withKey); err == nil {
		t.Error("a JSON key of a binary secret: want an error")
	}
	str, err := bodyValue(source.SecretsManager, []byte(`{"SecretBinary":null,"SecretString":"{\"k\":\"v\"}"}`))
	if err != nil || str.binary {
		t.Fatalf("string body = %+v, %v", str, err)
	}
	if v, err := pick(str, withKey); err != nil || string(v) != "v" {
		t.Errorf("pick = %q, %v", v, err)
	}
	if v, err := bodyValue(source.ParameterStore, []byte(`{"Parameter":{"Value":"a,b"},"ResultMetadata":{}}`)); err != nil || string(v.data) != "a,b" {
		t.Errorf("parameter body = %+v, %v", v, err)
	}
	if _, err := bodyValue(source.ParameterStore, []byte(`{"Parameter":{}}`)); err == nil {
		t.Error("parameter body without Value: want an error")
	}

	// A cached item: Text when there is one, else the body's binary.
	it := &source.Item{Key: source.SecretKey("s"), Body: []byte(`{"SecretBinary":"AQ==","SecretString":null}`)}
	if v, err := itemValue(it); err != nil || !v.binary || !bytes.Equal(v.data, []byte{1}) {
		t.Errorf("itemValue(binary) = %+v, %v", v, err)
	}
	it = &source.Item{Key: source.SecretKey("s"), Body: []byte(`{"SecretString":""}`), Text: []byte{}}
	if v, err := itemValue(it); err != nil || v.binary || len(v.data) != 0 {
		t.Errorf("itemValue(empty string) = %+v, %v", v, err)
	}
}
