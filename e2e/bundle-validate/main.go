// Command bundle-validate checks an OLM registry+v1 bundle directory with the operator-framework's
// own validators (github.com/operator-framework/api/pkg/validation), the library that
// `operator-sdk bundle validate DIR --select-optional suite=operatorframework` runs:
//
//   - the default bundle validators (ClusterServiceVersion, CustomResourceDefinition, Bundle);
//   - the optional "operatorframework" suite as current operator-sdk releases define it:
//     OperatorHub v2, standard capabilities, standard categories, good practices and the
//     removed/deprecated-API check (the v1 OperatorHub validator is deprecated upstream in favour
//     of the first three).
//
// Every finding is printed as `LEVEL [validator] object: detail`; the exit status is 1 when any
// finding is an error (warnings are printed, as operator-sdk does, without failing), 2 when the
// bundle cannot be read.
package main

import (
	"flag"
	"fmt"
	"os"

	apimanifests "github.com/operator-framework/api/pkg/manifests"
	apivalidation "github.com/operator-framework/api/pkg/validation"
	apierrors "github.com/operator-framework/api/pkg/validation/errors"
	interfaces "github.com/operator-framework/api/pkg/validation/interfaces"
)

func main() {
	k8sVersion := flag.String("k8s-version", "1.30", "Kubernetes version the removed-API and OperatorHub checks are made against (operator-sdk --optional-values=k8s-version=...)")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: %s [--k8s-version 1.30] BUNDLE_DIR\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	dir := flag.Arg(0)
	bundle, err := apimanifests.GetBundleFromDir(dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bundle-validate: reading %s: %v\n", dir, err)
		os.Exit(2)
	}

	// As operator-sdk does: the default validators get the bundle's objects; the optional ones
	// also every object of the bundle and the optional values.
	objects := bundle.ObjectsToValidate()
	var results []apierrors.ManifestResult
	results = append(results, apivalidation.DefaultBundleValidators.Validate(objects...)...)
	optional := append([]interface{}{}, objects...)
	for _, o := range bundle.Objects {
		optional = append(optional, o)
	}
	optional = append(optional, map[string]string{"k8s-version": *k8sVersion})
	suite := interfaces.Validators{
		apivalidation.OperatorHubV2Validator,
		apivalidation.StandardCapabilitiesValidator,
		apivalidation.StandardCategoriesValidator,
		apivalidation.GoodPracticesValidator,
		apivalidation.AlphaDeprecatedAPIsValidator,
	}
	results = append(results, suite.Validate(optional...)...)

	errorsFound, warnings := 0, 0
	for _, result := range results {
		for _, e := range result.Errors {
			errorsFound++
			fmt.Printf("ERROR [%s] %s: %s\n", result.Name, e.Field, e.Error())
		}
		for _, w := range result.Warnings {
			warnings++
			fmt.Printf("WARNING [%s] %s: %s\n", result.Name, w.Field, w.Error())
		}
	}
	fmt.Printf("bundle-validate: %s (%s): %d errors, %d warnings\n", dir, bundle.CSV.GetName(), errorsFound, warnings)
	if errorsFound > 0 {
		os.Exit(1)
	}
}
