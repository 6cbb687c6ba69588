package awsapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"reflect"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/aws/smithy-go/transport/http/protocol/awsjson"
)

// Shapes are neither modelled nor hand-written here: requests decode into
// the SDK's own input structs, checked member by member against the SDK's
// own schemas, and answers are the SDK's own output structs written by the
// SDK's own JSON 1.1 serializer (smithy-go's awsjson protocol, with the
// service's schemas: member names, timestamp formats, base64 blobs). The SDK
// ships output deserializers and input serializers; the serializer it uses
// for a request body writes any serializable shape, so encode hands it the
// output struct as the body to write. The JSON document rules of awsJson1_1
// are the same in both directions.

// encode writes out, an SDK output struct, as an awsJson1_1 body.
func encode(proto *awsjson.Protocol, op *smithy.Schema, out smithy.Serializable, schema *smithy.Schema) ([]byte, error) {
	req := smithyhttp.NewStackRequest().(*smithyhttp.Request)
	// Input is the output's schema: it is only checked for nil and for
	// being an event stream; the shape written is out's own.
	if err := proto.SerializeRequest(context.Background(), smithy.NewOperationSchema(op, schema, nil), out, req); err != nil {
		return nil, fmt.Errorf("serializing %s: %w", schema.ID().Name, err)
	}
	return io.ReadAll(req.GetStream())
}

// decodeInput decodes body, a JSON 1.1 request, into in (a pointer to the
// SDK's input struct for schema). It accepts exactly what the service
// would read as that input: a JSON object whose member names are the
// schema's, each of the member's type. Anything else (an unknown or
// misspelt member, a wrong type, trailing data) is an error, and the
// request is then forwarded for AWS to answer as only it can.
func decodeInput(body []byte, schema *smithy.Schema, in any) error {
	var members map[string]json.RawMessage
	if err := strictUnmarshal(body, &members); err != nil {
		return err
	}
	if members == nil {
		return fmt.Errorf("the body is not a JSON object")
	}
	for name := range members {
		if schema.Member(name) == nil {
			return fmt.Errorf("unknown member %q", name)
		}
	}
	// encoding/json matches names case-insensitively; with every name
	// known to be a member, it matches them exactly (the SDK's field
	// names are the member names: see TestInputFieldsAreMembers).
	return strictUnmarshal(body, in)
}

// strictUnmarshal is json.Unmarshal that also refuses data after the value.
func strictUnmarshal(body []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(body))
	if err := d.Decode(v); err != nil {
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return fmt.Errorf("data after the JSON object")
	}
	return nil
}

// fieldsAreMembers reports the exported fields of the struct v points to
// that are not members of schema, nor ResultMetadata (tests).
func fieldsAreMembers(v any, schema *smithy.Schema) []string {
	var bad []string
	t := reflect.TypeOf(v).Elem()
	for f := range t.Fields() {
		if !f.IsExported() || f.Name == "ResultMetadata" {
			continue
		}
		if schema.Member(f.Name) == nil {
			bad = append(bad, f.Name)
		}
	}
	return bad
}
