package container

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// ForPodman returns a Kubernetes Deployment or Pod manifest as `podman kube
// play` (4.3, Debian 12's) can run it against the emulated AWS, and the
// list of what it changed. It changes only:
//
//   - every image, to its substitute in images (an image without one is an
//     error, so nothing is pulled);
//   - the environment of the container named agent, to which env (KEY=value
//     entries) is added: the emulator's endpoint and test credentials, what
//     EKS Pod Identity or IRSA and the regional endpoint provide in a real
//     cluster. A variable the manifest already sets to another value is
//     an error: nothing of the manifest's own configuration is overridden;
//   - native sidecars (init containers with restartPolicy: Always), which
//     become the first regular containers: podman 4.3 refuses an init
//     container with a probe, and knows no sidecars. It also ignores
//     startupProbe, so the app starts beside the agent, not after it;
//   - the pod's restartPolicy, to OnFailure: under Always, podman 4.3
//     restarts an init container that has exited and then fails to remove
//     it ("cannot remove container ... as it is running").
func ForPodman(manifest []byte, images map[string]string, agent string, env []string) ([]byte, []string, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(manifest, &doc); err != nil {
		return nil, nil, fmt.Errorf("kube: %w", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, nil, errors.New("kube: want one YAML document")
	}
	root := doc.Content[0]
	var spec *yaml.Node
	switch kind := scalar(get(root, "kind")); kind {
	case "Deployment":
		spec = get(get(get(root, "spec"), "template"), "spec")
	case "Pod":
		spec = get(root, "spec")
	default:
		return nil, nil, fmt.Errorf("kube: kind %q: want a Deployment or a Pod", kind)
	}
	if spec == nil {
		return nil, nil, errors.New("kube: no pod spec")
	}
	var changes []string
	inits, containers := get(spec, "initContainers"), get(spec, "containers")
	if containers == nil {
		return nil, nil, errors.New("kube: the pod spec has no containers")
	}
	foundAgent := false
	for _, list := range []*yaml.Node{inits, containers} {
		if list == nil {
			continue
		}
		for _, c := range list.Content {
			name := scalar(get(c, "name"))
			img := get(c, "image")
			sub, ok := images[scalar(img)]
			if img == nil || !ok {
				return nil, nil, fmt.Errorf("kube: container %s: no substitute for image %q", name, scalar(img))
			}
			changes = append(changes, fmt.Sprintf("container %s: image %s -> %s", name, img.Value, sub))
			img.Value = sub
			if name == agent {
				foundAgent = true
				added, err := addEnv(c, env)
				if err != nil {
					return nil, nil, fmt.Errorf("kube: container %s: %w", name, err)
				}
				changes = append(changes, fmt.Sprintf("container %s: env += %s", name, strings.Join(added, ", ")))
			}
		}
	}
	if !foundAgent {
		return nil, nil, fmt.Errorf("kube: no container named %s", agent)
	}
	if inits != nil {
		var sidecars []*yaml.Node
		inits.Content = slices.DeleteFunc(inits.Content, func(c *yaml.Node) bool {
			if scalar(get(c, "restartPolicy")) != "Always" {
				return false
			}
			del(c, "restartPolicy")
			sidecars = append(sidecars, c)
			changes = append(changes, fmt.Sprintf("container %s: native sidecar -> first regular container", scalar(get(c, "name"))))
			return true
		})
		containers.Content = append(sidecars, containers.Content...)
		if len(inits.Content) == 0 {
			del(spec, "initContainers")
		}
	}
	if p := get(spec, "restartPolicy"); p == nil || p.Value == "Always" {
		del(spec, "restartPolicy")
		spec.Content = append(spec.Content, str("restartPolicy"), str("OnFailure"))
		changes = append(changes, "pod: restartPolicy OnFailure")
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, nil, fmt.Errorf("kube: %w", err)
	}
	return out.Bytes(), changes, nil
}

// addEnv appends KEY=value entries to a container's env.
func addEnv(c *yaml.Node, env []string) (names []string, err error) {
	list := get(c, "env")
	if list == nil {
		list = &yaml.Node{Kind: yaml.SequenceNode}
		c.Content = append(c.Content, str("env"), list)
	}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("env entry %q: want KEY=value", kv)
		}
		set := false
		for _, e := range list.Content {
			if scalar(get(e, "name")) != k {
				continue
			}
			if got := scalar(get(e, "value")); got != v {
				return nil, fmt.Errorf("%s is set by the manifest already (to %q, not %q)", k, got, v)
			}
			set = true
		}
		if set {
			continue
		}
		list.Content = append(list.Content, &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{
			str("name"), str(k), str("value"), {Kind: yaml.ScalarNode, Tag: "!!str", Value: v, Style: yaml.DoubleQuotedStyle},
		}})
		names = append(names, k)
	}
	return names, nil
}

// get is a mapping node's value for key, or nil.
func get(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// del removes key from a mapping node.
func del(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = slices.Delete(m.Content, i, i+2)
			return
		}
	}
}

func scalar(n *yaml.Node) string {
	if n == nil || n.Kind != yaml.ScalarNode {
		return ""
	}
	return n.Value
}

func str(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }
