// Command olm-validate checks an OLM bundle directory with operator-framework's own validation library,
// the one `operator-sdk bundle validate` uses: the default bundle validators, the OperatorHub suites
// (v2 checks, standard capabilities and categories), good practices, the object validator and the
// deprecated-API check. Every result is printed; the exit status is 1 on any error (and, with
// --fail-on-warnings, on any warning), unlike operator-verify, which only logs.
package main

import (
	"flag"
	"fmt"
	"os"
	"sort"

	"github.com/operator-framework/api/pkg/manifests"
	"github.com/operator-framework/api/pkg/validation"
	"github.com/operator-framework/api/pkg/validation/errors"
	validator "github.com/operator-framework/api/pkg/validation/interfaces"
)

type suite struct {
	name      string
	check validator.Validator
}

// suites lists what runs, in order; names are printed with each result so a failure says which suite
// raised it.
var suites = []suite{
	{"csv", validation.ClusterServiceVersionValidator},
	{"crd", validation.CustomResourceDefinitionValidator},
	{"bundle", validation.BundleValidator},
	{"operatorhub", validation.OperatorHubV2Validator},
	{"standard-capabilities", validation.StandardCapabilitiesValidator},
	{"standard-categories", validation.StandardCategoriesValidator},
	{"good-practices", validation.GoodPracticesValidator},
	{"object", validation.ObjectValidator},
	{"alpha-deprecated-apis", validation.AlphaDeprecatedAPIsValidator},
}

func main() {
	k8sVersion := flag.String("k8s-version", "", "Kubernetes version (e.g. 1.27) the OperatorHub and deprecated-API checks target; default: the CSV's minKubeVersion")
	failOnWarnings := flag.Bool("fail-on-warnings", false, "exit 1 when any validator warns")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: olm-validate [--k8s-version X.Y] [--fail-on-warnings] <bundle-dir>\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	dir := flag.Arg(0)

	bundle, err := manifests.GetBundleFromDir(dir)
	if err != nil {
		fmt.Printf("ERROR [load] %s: %v\n", dir, err)
		fmt.Println("olm-validate: 1 error, 0 warnings")
		os.Exit(1)
	}
	version := *k8sVersion
	if version == "" && bundle.CSV != nil {
		version = bundle.CSV.Spec.MinKubeVersion
	}
	objs := append(bundle.ObjectsToValidate(), map[string]string{"k8s-version": version})

	nErrors, nWarnings := 0, 0
	for _, s := range suites {
		for _, result := range s.check.Validate(objs...) {
			nErrors += report("ERROR", s.name, result.Name, result.Errors)
			nWarnings += report("WARN", s.name, result.Name, result.Warnings)
		}
	}
	fmt.Printf("olm-validate: %s (%s, minKubeVersion %q): %d error(s), %d warning(s)\n", dir, bundle.Name, version, nErrors, nWarnings)
	if nErrors > 0 || (*failOnWarnings && nWarnings > 0) {
		os.Exit(1)
	}
}

// report prints one line per problem, sorted so the output is stable between runs.
func report(level, suite, name string, problems []errors.Error) int {
	lines := make([]string, 0, len(problems))
	for _, p := range problems {
		lines = append(lines, fmt.Sprintf("%s [%s] %s: %s", level, suite, name, p.Error()))
	}
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
	return len(lines)
}
