// Command argo-validate checks Argo Workflows manifests with Argo's own
// validation code (package workflow/validate), the checks behind
// `argo lint --offline`: unresolved {{...}} variables, unknown DAG or step
// references, invalid retry strategies, bad cron schedules and more.
//
// Usage:
//
//	argo-validate [-namespace NS] [-allow-other-kinds] FILE... (or - for stdin)
//
// Every file may hold several YAML documents. Each document must be a Workflow,
// CronWorkflow, WorkflowTemplate or ClusterWorkflowTemplate (templates given on
// the command line can be referenced by the workflows). Unknown fields are
// errors. The exit code is 0 when every document is valid, 1 when at least one
// is not, 2 on a usage or read error.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	wfv1 "github.com/argoproj/argo-workflows/v4/pkg/apis/workflow/v1alpha1"
	"github.com/argoproj/argo-workflows/v4/util/logging"
	"github.com/argoproj/argo-workflows/v4/workflow/common"
	"github.com/argoproj/argo-workflows/v4/workflow/validate"
)

// document is one YAML document of an input file.
type document struct {
	file  string
	index int // 1-based position in its file
	obj   any // parsed Argo object, nil when parsing failed
	err   error
}

func (d document) label() string {
	kind, name := "document", ""
	switch v := d.obj.(type) {
	case *wfv1.Workflow:
		kind, name = "Workflow", objectName(v.Name, v.GenerateName)
	case *wfv1.CronWorkflow:
		kind, name = "CronWorkflow", objectName(v.Name, v.GenerateName)
	case *wfv1.WorkflowTemplate:
		kind, name = "WorkflowTemplate", objectName(v.Name, v.GenerateName)
	case *wfv1.ClusterWorkflowTemplate:
		kind, name = "ClusterWorkflowTemplate", objectName(v.Name, v.GenerateName)
	}
	if name == "" {
		return fmt.Sprintf("%s: document %d (%s)", d.file, d.index, kind)
	}
	return fmt.Sprintf("%s: document %d (%s %q)", d.file, d.index, kind, name)
}

func objectName(name, generateName string) string {
	if name != "" {
		return name
	}
	return generateName
}

// templateStore resolves workflowTemplateRef / templateRef to templates that
// were given on the command line, like the offline mode of `argo lint`.
type templateStore struct {
	namespaced map[string]map[string]*wfv1.WorkflowTemplate
	cluster    map[string]*wfv1.ClusterWorkflowTemplate
}

type namespacedGetter struct {
	store     *templateStore
	namespace string
}

func (g namespacedGetter) Get(_ context.Context, name string) (*wfv1.WorkflowTemplate, error) {
	if t, ok := g.store.namespaced[g.namespace][name]; ok {
		return t, nil
	}
	return nil, fmt.Errorf("WorkflowTemplate %q not found in namespace %q (pass its file too)", name, g.namespace)
}

type clusterGetter struct{ store *templateStore }

func (g clusterGetter) Get(_ context.Context, name string) (*wfv1.ClusterWorkflowTemplate, error) {
	if t, ok := g.store.cluster[name]; ok {
		return t, nil
	}
	return nil, fmt.Errorf("ClusterWorkflowTemplate %q not found (pass its file too)", name)
}

func readInput(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(path)
}

// splitDocuments parses every YAML document of data strictly (unknown fields
// are errors), using Argo's own decoder.
func splitDocuments(ctx context.Context, file string, data []byte) ([]document, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs []document
	index := 0
	for {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if isBlank(raw) {
			continue
		}
		index++
		doc := document{file: file, index: index}
		results := common.ParseObjects(ctx, raw, true)
		if len(results) == 0 {
			doc.err = errors.New("not a Kubernetes object (invalid YAML or no kind)")
			docs = append(docs, doc)
			continue
		}
		res := results[0]
		switch res.Object.(type) {
		case *wfv1.Workflow, *wfv1.CronWorkflow, *wfv1.WorkflowTemplate, *wfv1.ClusterWorkflowTemplate:
			doc.obj = res.Object
			doc.err = res.Err
		default:
			var meta metav1.TypeMeta
			_ = utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096).Decode(&meta)
			if meta.Kind == "" {
				doc.err = errors.New("not a Kubernetes object: no kind")
			} else {
				doc.err = fmt.Errorf("%w (kind %s %s)", errUnsupportedKind, meta.APIVersion, meta.Kind)
			}
		}
		docs = append(docs, doc)
	}
	return docs, nil
}

var errUnsupportedKind = errors.New("not a Workflow, CronWorkflow, WorkflowTemplate or ClusterWorkflowTemplate")

// isBlank reports whether a YAML document holds nothing but comments and space.
func isBlank(raw []byte) bool {
	for _, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") && line != "---" {
			return false
		}
	}
	return true
}

func namespaceOf(ns, fallback string) string {
	if ns != "" {
		return ns
	}
	return fallback
}

func run(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("argo-validate", flag.ContinueOnError)
	flags.SetOutput(stderr)
	defaultNamespace := flags.String("namespace", "default", "namespace of objects that have none (for template references)")
	allowOtherKinds := flags.Bool("allow-other-kinds", false, "skip documents that are not Argo workflow kinds instead of failing")
	quiet := flags.Bool("q", false, "print only errors")
	flags.Usage = func() {
		fmt.Fprintln(stderr, "usage: argo-validate [flags] FILE... (- reads stdin)")
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		return 2
	}
	if flags.NArg() == 0 {
		flags.Usage()
		return 2
	}

	// Argo's packages log through a logger carried by the context.
	ctx := logging.WithLogger(context.Background(),
		logging.NewSlogLoggerCustom(logging.Error, logging.Text, stderr))

	var docs []document
	for _, file := range flags.Args() {
		data, err := readInput(file)
		if err != nil {
			fmt.Fprintf(stderr, "error: %v\n", err)
			return 2
		}
		fileDocs, err := splitDocuments(ctx, file, data)
		if err != nil {
			fmt.Fprintf(stderr, "error: %v\n", err)
			return 2
		}
		if len(fileDocs) == 0 {
			fmt.Fprintf(stderr, "%s: no YAML documents\n", file)
			return 1
		}
		docs = append(docs, fileDocs...)
	}

	store := &templateStore{
		namespaced: map[string]map[string]*wfv1.WorkflowTemplate{},
		cluster:    map[string]*wfv1.ClusterWorkflowTemplate{},
	}
	for _, d := range docs {
		if d.err != nil {
			continue
		}
		switch v := d.obj.(type) {
		case *wfv1.WorkflowTemplate:
			ns := namespaceOf(v.Namespace, *defaultNamespace)
			if store.namespaced[ns] == nil {
				store.namespaced[ns] = map[string]*wfv1.WorkflowTemplate{}
			}
			store.namespaced[ns][v.Name] = v
		case *wfv1.ClusterWorkflowTemplate:
			store.cluster[v.Name] = v
		}
	}

	failed, checked := 0, 0
	for _, d := range docs {
		err := d.err
		if errors.Is(err, errUnsupportedKind) && *allowOtherKinds {
			continue
		}
		if err == nil {
			err = validateObject(ctx, store, *defaultNamespace, d.obj)
		}
		checked++
		if err != nil {
			failed++
			fmt.Fprintf(stderr, "INVALID %s: %v\n", d.label(), err)
			continue
		}
		if !*quiet {
			fmt.Fprintf(stdout, "ok      %s\n", d.label())
		}
	}
	if failed > 0 {
		fmt.Fprintf(stderr, "%d of %d documents invalid\n", failed, checked)
		return 1
	}
	if checked == 0 {
		fmt.Fprintln(stderr, "no Argo workflow objects found")
		return 1
	}
	if !*quiet {
		fmt.Fprintf(stdout, "%d documents valid\n", checked)
	}
	return 0
}

func validateObject(ctx context.Context, store *templateStore, defaultNamespace string, obj any) error {
	cluster := clusterGetter{store: store}
	switch v := obj.(type) {
	case *wfv1.Workflow:
		getter := namespacedGetter{store: store, namespace: namespaceOf(v.Namespace, defaultNamespace)}
		return validate.ValidateWorkflow(ctx, getter, cluster, v, nil, validate.ValidateOpts{Lint: true})
	case *wfv1.CronWorkflow:
		getter := namespacedGetter{store: store, namespace: namespaceOf(v.Namespace, defaultNamespace)}
		return validate.ValidateCronWorkflow(ctx, getter, cluster, v, nil)
	case *wfv1.WorkflowTemplate:
		getter := namespacedGetter{store: store, namespace: namespaceOf(v.Namespace, defaultNamespace)}
		return validate.ValidateWorkflowTemplate(ctx, getter, cluster, v, nil, validate.ValidateOpts{Lint: true})
	case *wfv1.ClusterWorkflowTemplate:
		getter := namespacedGetter{store: store, namespace: defaultNamespace}
		return validate.ValidateClusterWorkflowTemplate(ctx, getter, cluster, v, nil, validate.ValidateOpts{Lint: true})
	}
	return errUnsupportedKind
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
