package source

import (
	"errors"
	"testing"
)

func TestJSONKey(t *testing.T) {
	tests := []struct {
		doc, key, want, code string
	}{
		{`{"password":"hunter2","port":5432}`, "password", "hunter2", ""},
		{`{"password":"hunter2","port":5432}`, "port", "5432", ""},
		{`{"a":{"b":[1,2]}}`, "a", `{"b":[1,2]}`, ""},
		{`{"a":null}`, "a", "null", ""},
		{`{"a":"line\nbreak \u00e9"}`, "a", "line\nbreak é", ""},
		{`{"a":1,"a":2}`, "a", "2", ""},
		{` {"a" : "x"} `, "a", "x", ""},
		{`{"a":1}`, "b", "", "JSONKeyNotFound"},
		{`not json`, "a", "", "ValueNotJSON"},
		{`[1,2]`, "a", "", "ValueNotJSON"},
		{`null`, "a", "", "ValueNotJSON"},
		{`"str"`, "a", "", "ValueNotJSON"},
		{`{"a":1} {"b":2}`, "a", "", "ValueNotJSON"},
		{``, "a", "", "ValueNotJSON"},
	}
	for _, tc := range tests {
		got, err := JSONKey([]byte(tc.doc), tc.key)
		if tc.code != "" {
			var verr *JSONKeyError
			if !errors.As(err, &verr) || verr.Code != tc.code {
				t.Errorf("JSONKey(%s, %s) = %q, %v; want code %s", tc.doc, tc.key, got, err, tc.code)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("JSONKey(%s, %s) = %q, %v; want %q", tc.doc, tc.key, got, err, tc.want)
		}
	}
}
