package config

import (
	"fmt"
	"reflect"

	"go.yaml.in/yaml/v3"
)

// A deployment in regions[].deployments is written either short, `name: deployment`, or long, with
// options:
//
//	deployments:
//	  gpt-4o: gpt-4o-prod
//	  mistral-large:
//	    deployment: mistral-large-2411
//	    prefill: true            # continues a trailing assistant message (policy.streams.resume: prefill)
//
// longDeployments turns every long form in the document into the short one before it is decoded, and
// returns the options it found: per region index, the names marked prefill.
func (d *decoder) longDeployments(root *yaml.Node) map[int]map[string]bool {
	regions := mappingValue(root, "regions")
	if regions == nil || regions.Kind != yaml.SequenceNode {
		return nil
	}
	out := map[int]map[string]bool{}
	for i, r := range regions.Content {
		deps := mappingValue(r, "deployments")
		if deps == nil || deps.Kind != yaml.MappingNode {
			continue
		}
		for j := 0; j+1 < len(deps.Content); j += 2 {
			k, v := deps.Content[j], deps.Content[j+1]
			if v.Kind != yaml.MappingNode {
				continue
			}
			path := fmt.Sprintf("regions[%d].deployments.%s", i, k.Value)
			var long struct {
				Deployment string `yaml:"deployment"`
				Prefill    bool   `yaml:"prefill"`
			}
			d.value(v, path, reflect.ValueOf(&long).Elem())
			name := mappingValue(v, "deployment")
			if long.Deployment == "" || name == nil {
				d.fail(path+".deployment", v, "required in the long form (deployment: NAME, prefill: true)")
				name = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "", Line: v.Line, Column: v.Column}
			}
			deps.Content[j+1] = name // the short form, as written (its ${NAME} expands once, when it is decoded)
			if long.Prefill {
				if out[i] == nil {
					out[i] = map[string]bool{}
				}
				out[i][k.Value] = true
			}
		}
	}
	return out
}

// mappingValue returns the value of key in the mapping n (nil when n is not a mapping or has no key).
func mappingValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}
