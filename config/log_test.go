package config

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// TestLogValueNamesEveryField fails when a field added to Config is left out
// of the logged configuration (the debug "configuration" line is how an
// operator checks what the extension understood).
func TestLogValueNamesEveryField(t *testing.T) {
	logged := map[string]bool{}
	for _, a := range Default().LogValue().Group() {
		logged[a.Key] = true
	}
	snake := regexp.MustCompile(`([a-z0-9])([A-Z])`)
	aliases := map[string]string{"HTTPPort": "http_port", "ParamsTimeout": "parameters_timeout"}
	typ := reflect.TypeFor[Config]()
	for i := range typ.NumField() {
		name, ok := aliases[typ.Field(i).Name]
		if !ok {
			name = strings.ToLower(snake.ReplaceAllString(typ.Field(i).Name, "${1}_${2}"))
		}
		if !logged[name] {
			t.Errorf("Config.%s is not in LogValue (want key %q); logged: %v", typ.Field(i).Name, name, logged)
		}
	}
}
