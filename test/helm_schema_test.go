package test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"reflect"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// The chart and the compose stack, as the tests (these, and those under the external tag) find them.
const (
	helmDir    = "../deployments/helm"
	chartDir   = helmDir + "/anyroute"
	composeDir = "../deployments/compose"
)

var updateHelmSchema = flag.Bool("update-helm-schema", false,
	"rewrite definitions/anyrouteConfig of the chart's values.schema.json from config/schema.json")

// TestHelmValuesSchemaEmbedsConfigSchema keeps definitions/anyrouteConfig of values.schema.json
// identical to config/schema.json (references rebased under it), so helm checks the `config`
// block with the binary's own rules. -update-helm-schema rewrites it.
func TestHelmValuesSchemaEmbedsConfigSchema(t *testing.T) {
	schemaFile := chartDir + "/values.schema.json"
	values := readJSONFile(t, schemaFile).(map[string]any)
	want := embeddedConfigSchema(readJSONFile(t, "../config/schema.json"))
	defs, _ := values["definitions"].(map[string]any)
	if defs == nil {
		t.Fatalf("%s has no definitions", schemaFile)
	}
	if reflect.DeepEqual(defs["anyrouteConfig"], want) {
		return
	}
	if !*updateHelmSchema {
		t.Fatalf("%s: definitions/anyrouteConfig differs from config/schema.json; run\n"+
			"  cd test && go test -run TestHelmValuesSchemaEmbedsConfigSchema -update-helm-schema .", schemaFile)
	}
	defs["anyrouteConfig"] = want
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(values); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(schemaFile, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("rewrote %s", schemaFile)
}

// embeddedConfigSchema is the config schema as values.schema.json holds it: without $schema and
// $id (a nested $id would change how references resolve) and with "#/definitions/X" references
// pointing under definitions/anyrouteConfig.
func embeddedConfigSchema(s any) any {
	switch v := s.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			if k == "$schema" || k == "$id" {
				continue
			}
			if ref, ok := e.(string); ok && k == "$ref" && strings.HasPrefix(ref, "#/definitions/") {
				e = "#/definitions/anyrouteConfig/definitions/" + strings.TrimPrefix(ref, "#/definitions/")
			}
			out[k] = embeddedConfigSchema(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = embeddedConfigSchema(e)
		}
		return out
	default:
		return v
	}
}

func readJSONFile(t *testing.T, file string) any {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return parseJSON(t, string(data))
}

func parseJSON(t *testing.T, data string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(data), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, data)
	}
	return v
}

// readYAML decodes the fields of into; others in the file are ignored (provisioning files have many).
func readYAML(t *testing.T, file string, into any) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, into); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}
