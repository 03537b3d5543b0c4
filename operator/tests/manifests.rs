//! The install manifests: `deploy/` and `bundle/` are what the code generates, the bundle passes
//! the key rules of the operator-framework bundle validator, no role has a wildcard, the
//! ClusterRole covers every role the operator creates, and the Deployment is hardened.
//!
//! `UPDATE_MANIFESTS=1 cargo test -p mesh-operator --test manifests` regenerates the files.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use k8s_openapi::api::rbac::v1::PolicyRule;
use mesh_operator::manifests::{self, GeneratedFile, bundle, rbac, yaml};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

fn check_or_update(dir: &str, files: &[GeneratedFile]) -> Vec<String> {
    let dir = root().join(dir);
    if std::env::var_os("UPDATE_MANIFESTS").is_some() {
        manifests::write(&dir, files).expect("write manifests");
        return Vec::new();
    }
    files
        .iter()
        .filter(|f| std::fs::read_to_string(dir.join(&f.path)).unwrap_or_default() != f.contents)
        .map(|f| f.path.display().to_string())
        .collect()
}

#[test]
fn committed_deploy_and_bundle_match_the_code() {
    let mut stale: Vec<String> = check_or_update("deploy", &manifests::install_files().expect("install files"))
        .into_iter()
        .map(|p| format!("deploy/{p}"))
        .collect();
    stale.extend(
        check_or_update("bundle", &manifests::bundle_files().expect("bundle files"))
            .into_iter()
            .map(|p| format!("bundle/{p}")),
    );
    assert!(
        stale.is_empty(),
        "{stale:?} differ from the code: run `cargo run -p mesh-operator -- manifests --out deploy --bundle bundle` (or UPDATE_MANIFESTS=1 cargo test -p mesh-operator --test manifests) and commit the result"
    );
    // Nothing else in bundle/manifests: one CSV and the owned CRD.
    let mut listed: Vec<String> = std::fs::read_dir(root().join("bundle/manifests"))
        .expect("bundle/manifests")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    listed.sort();
    let mut expected = vec![bundle::csv_file(), bundle::CRD_FILE.to_string()];
    expected.sort();
    assert_eq!(listed, expected);
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn install_documents() -> Vec<Value> {
    yaml::parse_stream(&read("deploy/install.yaml")).expect("install.yaml parses")
}

fn find<'a>(documents: &'a [Value], kind: &str) -> &'a Value {
    documents.iter().find(|d| d["kind"] == kind).unwrap_or_else(|| panic!("no {kind} in install.yaml"))
}

fn csv() -> Value {
    let text = read(&format!("bundle/manifests/{}", bundle::csv_file()));
    serde_yaml::from_str(&text).expect("CSV parses")
}

fn strings(value: &Value) -> Vec<&str> {
    value.as_array().into_iter().flatten().filter_map(Value::as_str).collect()
}

/// `MAJOR.MINOR.PATCH[-pre][+build]`, numbers without leading zeros.
fn is_semver(version: &str) -> bool {
    let core = version.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) && (p.len() == 1 || !p.starts_with('0')))
}

#[test]
fn semver_check_works() {
    assert!(is_semver("0.1.0") && is_semver("1.30.0") && is_semver("1.2.3-rc.1+abc"));
    assert!(!is_semver("v1.30.0") && !is_semver("1.30") && !is_semver("01.2.3"));
}

#[test]
fn csv_is_named_after_the_package_with_a_semver_version() {
    let csv = csv();
    let annotations: Value = serde_yaml::from_str(&read("bundle/metadata/annotations.yaml")).expect("annotations");
    let package =
        annotations["annotations"]["operators.operatorframework.io.bundle.package.v1"].as_str().expect("package");
    let version = csv["spec"]["version"].as_str().expect("spec.version");
    assert!(is_semver(version), "spec.version {version}");
    assert_eq!(csv["metadata"]["name"], format!("{package}.v{version}"));
    assert_eq!(bundle::csv_file(), format!("{package}.v{version}.clusterserviceversion.yaml"));
    assert_eq!(csv["apiVersion"], "operators.coreos.com/v1alpha1");
    assert_eq!(csv["kind"], "ClusterServiceVersion");
    let min = csv["spec"]["minKubeVersion"].as_str().expect("minKubeVersion");
    assert!(is_semver(min), "minKubeVersion {min} must be Major.Minor.Patch without v");
}

#[test]
fn csv_supports_all_namespaces_only() {
    let csv = csv();
    let modes = csv["spec"]["installModes"].as_array().expect("installModes");
    let mut types: Vec<&str> = modes.iter().filter_map(|m| m["type"].as_str()).collect();
    types.sort();
    assert_eq!(types, ["AllNamespaces", "MultiNamespace", "OwnNamespace", "SingleNamespace"], "each mode exactly once");
    let supported: Vec<&str> =
        modes.iter().filter(|m| m["supported"] == true).filter_map(|m| m["type"].as_str()).collect();
    assert_eq!(supported, ["AllNamespaces"]);
}

#[test]
fn csv_metadata_passes_the_operatorhub_rules() {
    let csv = csv();
    let spec = &csv["spec"];
    let annotations = &csv["metadata"]["annotations"];
    for key in ["displayName", "description", "maturity"] {
        assert!(spec[key].as_str().is_some_and(|s| !s.is_empty()), "spec.{key}");
    }
    assert!(spec["provider"]["name"].as_str().is_some_and(|s| !s.is_empty()), "provider name");
    let maintainers = spec["maintainers"].as_array().expect("maintainers");
    assert!(!maintainers.is_empty());
    for m in maintainers {
        let email = m["email"].as_str().expect("email");
        let (user, domain) = email.split_once('@').expect("email has @");
        assert!(!user.is_empty() && domain.contains('.'), "maintainer email {email}");
        assert!(m["name"].as_str().is_some_and(|s| !s.is_empty()));
    }
    for link in spec["links"].as_array().expect("links") {
        assert!(link["url"].as_str().is_some_and(|u| u.starts_with("https://")), "link {link}");
    }
    assert!(!strings(&spec["keywords"]).is_empty());
    let icons = spec["icon"].as_array().expect("icon is a list");
    assert_eq!(icons.len(), 1, "exactly one icon");
    let mediatype = icons[0]["mediatype"].as_str().expect("mediatype");
    assert!(["image/png", "image/jpeg", "image/gif", "image/svg+xml"].contains(&mediatype));
    let data = icons[0]["base64data"].as_str().expect("base64data");
    let decoded: k8s_openapi::ByteString =
        serde_json::from_value(Value::String(data.to_string())).expect("valid base64");
    assert!(String::from_utf8_lossy(&decoded.0).starts_with("<svg"), "the icon is an SVG");
    let capabilities = annotations["capabilities"].as_str().expect("capabilities");
    assert!(
        ["Basic Install", "Seamless Upgrades", "Full Lifecycle", "Deep Insights", "Auto Pilot"].contains(&capabilities)
    );
    const CATEGORIES: &[&str] = &[
        "AI/Machine Learning",
        "Application Runtime",
        "Big Data",
        "Cloud Provider",
        "Database",
        "Developer Tools",
        "Drivers and plugins",
        "Integration & Delivery",
        "Logging & Tracing",
        "Modernization & Migration",
        "Monitoring",
        "Networking",
        "OpenShift Optional",
        "Security",
        "Storage",
        "Streaming & Messaging",
    ];
    for category in annotations["categories"].as_str().expect("categories").split(',') {
        assert!(CATEGORIES.contains(&category.trim()), "category {category}");
    }
    for key in ["containerImage", "createdAt", "repository", "support", "description"] {
        assert!(annotations[key].as_str().is_some_and(|s| !s.is_empty()), "annotation {key}");
    }
    assert_eq!(annotations["operatorframework.io/suggested-namespace"], manifests::NAMESPACE);
    assert_eq!(annotations["containerImage"], manifests::image());
    assert!(
        strings(
            &spec["relatedImages"]
                .as_array()
                .expect("relatedImages")
                .iter()
                .map(|i| i["image"].clone())
                .collect::<Value>()
        )
        .contains(&manifests::image().as_str())
    );
}

#[test]
fn owned_crds_are_in_the_bundle_and_alm_examples_are_owned() {
    let csv = csv();
    let owned = csv["spec"]["customresourcedefinitions"]["owned"].as_array().expect("owned CRDs");
    assert!(!owned.is_empty());
    let crd: Value = serde_yaml::from_str(&read(&format!("bundle/manifests/{}", bundle::CRD_FILE))).expect("CRD");
    let mut owned_gvks = BTreeSet::new();
    for entry in owned {
        let name = entry["name"].as_str().expect("name");
        assert_eq!(crd["metadata"]["name"], name, "owned CRD {name} is in bundle/manifests");
        assert_eq!(crd["spec"]["names"]["kind"], entry["kind"]);
        let version = entry["version"].as_str().expect("version");
        assert!(
            crd["spec"]["versions"]
                .as_array()
                .expect("versions")
                .iter()
                .any(|v| v["name"] == version && v["served"] == true),
            "{name} serves {version}"
        );
        assert!(entry["displayName"].as_str().is_some_and(|s| !s.is_empty()));
        assert!(entry["description"].as_str().is_some_and(|s| !s.is_empty()));
        assert!(!entry["resources"].as_array().expect("resources").is_empty());
        let group = crd["spec"]["group"].as_str().expect("group");
        owned_gvks.insert(format!("{group}/{version}/{}", entry["kind"].as_str().unwrap_or_default()));
    }
    // The CRD in the bundle is the one in deploy/ and in crds/yaml/.
    assert_eq!(&crd, find(&install_documents(), "CustomResourceDefinition"));
    let committed: Value =
        serde_yaml::from_str(&read("crds/yaml/meshinstallations.meshoperator.dev.yaml")).expect("crds/yaml");
    assert_eq!(crd, committed);

    let examples: Vec<Value> =
        serde_json::from_str(csv["metadata"]["annotations"]["alm-examples"].as_str().expect("alm-examples"))
            .expect("JSON array");
    assert_eq!(examples.len(), rbac::SAMPLES.len(), "one example per sample");
    for example in &examples {
        let gvk = format!(
            "{}/{}",
            example["apiVersion"].as_str().unwrap_or_default(),
            example["kind"].as_str().unwrap_or_default()
        );
        assert!(owned_gvks.contains(&gvk), "alm-examples kind {gvk} is not owned ({owned_gvks:?})");
    }
}

/// Every descriptor path of the fields below `schema`, as the bundle names them.
fn field_paths(schema: &Value, prefix: &str, out: &mut Vec<String>) {
    for (name, child) in schema["properties"].as_object().into_iter().flatten() {
        let path = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
        out.push(path.clone());
        field_paths(child, &path, out);
        if child["items"].is_object() {
            field_paths(&child["items"], &format!("{path}[0]"), out);
        }
    }
}

#[test]
fn every_spec_and_status_field_has_a_descriptor() {
    let csv = csv();
    let owned = &csv["spec"]["customresourcedefinitions"]["owned"][0];
    let crd: Value = serde_yaml::from_str(&read(&format!("bundle/manifests/{}", bundle::CRD_FILE))).expect("CRD");
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"];
    for (part, key) in [("spec", "specDescriptors"), ("status", "statusDescriptors")] {
        let mut fields = Vec::new();
        field_paths(&schema[part], "", &mut fields);
        assert!(fields.len() > 10, "{part} has fields");
        let descriptors = owned[key].as_array().unwrap_or_else(|| panic!("{key}"));
        let paths: BTreeSet<&str> = descriptors.iter().filter_map(|d| d["path"].as_str()).collect();
        let missing: Vec<&String> = fields.iter().filter(|f| !paths.contains(f.as_str())).collect();
        assert!(missing.is_empty(), "{part} fields without a descriptor: {missing:?}");
        for d in descriptors {
            assert!(d["displayName"].as_str().is_some_and(|s| !s.is_empty()), "{d}");
            for x in strings(&d["x-descriptors"]) {
                assert!(x.starts_with("urn:alm:descriptor:"), "{x}");
            }
        }
    }
    assert!(
        owned["statusDescriptors"].as_array().into_iter().flatten().any(|d| d["path"] == "conditions"
            && strings(&d["x-descriptors"]).contains(&"urn:alm:descriptor:io.kubernetes.conditions")),
        "conditions are described as conditions"
    );
}

fn rules(value: &Value) -> Vec<PolicyRule> {
    serde_json::from_value(value.clone()).expect("rules")
}

#[test]
fn csv_permissions_and_deployment_equal_deploy() {
    let csv = csv();
    let install = &csv["spec"]["install"];
    assert_eq!(install["strategy"], "deployment");
    assert!(
        install.get("permissions").is_none() && install.get("clusterPermissions").is_none(),
        "permissions belong under install.spec"
    );
    let spec = &install["spec"];
    let documents = install_documents();
    let cluster_permissions = spec["clusterPermissions"].as_array().expect("clusterPermissions");
    let permissions = spec["permissions"].as_array().expect("permissions");
    assert_eq!(cluster_permissions.len(), 1);
    assert_eq!(permissions.len(), 1);
    assert_eq!(rules(&cluster_permissions[0]["rules"]), rules(&find(&documents, "ClusterRole")["rules"]));
    assert_eq!(rules(&permissions[0]["rules"]), rules(&find(&documents, "Role")["rules"]));
    let deployments = spec["deployments"].as_array().expect("deployments");
    assert_eq!(deployments.len(), 1);
    let deployment = find(&documents, "Deployment");
    assert_eq!(deployments[0]["spec"], deployment["spec"]);
    assert_eq!(deployments[0]["name"], deployment["metadata"]["name"]);
    // Every Deployment's ServiceAccount has a permissions entry.
    for d in deployments {
        let sa = d["spec"]["template"]["spec"]["serviceAccountName"].as_str().expect("serviceAccountName");
        assert!(permissions.iter().chain(cluster_permissions).any(|p| p["serviceAccountName"] == sa), "{sa}");
    }
    // The bindings in deploy/ bind the same ServiceAccount.
    let sa = find(&documents, "ServiceAccount");
    for kind in ["ClusterRoleBinding", "RoleBinding"] {
        let binding = find(&documents, kind);
        assert_eq!(binding["subjects"][0]["name"], sa["metadata"]["name"]);
        assert_eq!(binding["subjects"][0]["namespace"], sa["metadata"]["namespace"]);
    }
}

#[test]
fn annotations_and_dockerfile_labels_agree() {
    let annotations: Value = serde_yaml::from_str(&read("bundle/metadata/annotations.yaml")).expect("annotations");
    let annotations = annotations["annotations"].as_object().expect("annotations map");
    let get = |k: &str| annotations.get(k).and_then(Value::as_str).unwrap_or_default();
    assert_eq!(get("operators.operatorframework.io.bundle.mediatype.v1"), "registry+v1");
    assert_eq!(get("operators.operatorframework.io.bundle.manifests.v1"), "manifests/");
    assert_eq!(get("operators.operatorframework.io.bundle.metadata.v1"), "metadata/");
    assert_eq!(get("operators.operatorframework.io.bundle.package.v1"), bundle::PACKAGE);
    let channels: Vec<&str> = get("operators.operatorframework.io.bundle.channels.v1").split(',').collect();
    assert_eq!(channels, ["candidate-v0"]);
    assert!(channels.contains(&get("operators.operatorframework.io.bundle.channel.default.v1")));

    let dockerfile = read("bundle/bundle.Dockerfile");
    let labels: Vec<(String, String)> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("LABEL "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let from_annotations: Vec<(String, String)> =
        annotations.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect();
    let mut sorted_labels = labels.clone();
    sorted_labels.sort();
    let mut sorted_annotations = from_annotations;
    sorted_annotations.sort();
    assert_eq!(sorted_labels, sorted_annotations, "bundle.Dockerfile labels equal metadata/annotations.yaml");
    let instructions: Vec<&str> =
        dockerfile.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty() && !l.starts_with("LABEL")).collect();
    assert_eq!(instructions, ["FROM scratch", "COPY manifests /manifests/", "COPY metadata /metadata/"]);
}

fn all_rules() -> Vec<(String, Vec<PolicyRule>)> {
    let documents = install_documents();
    let csv = csv();
    let spec = &csv["spec"]["install"]["spec"];
    vec![
        ("deploy ClusterRole".to_string(), rules(&find(&documents, "ClusterRole")["rules"])),
        ("deploy Role".to_string(), rules(&find(&documents, "Role")["rules"])),
        ("bundle clusterPermissions".to_string(), rules(&spec["clusterPermissions"][0]["rules"])),
        ("bundle permissions".to_string(), rules(&spec["permissions"][0]["rules"])),
    ]
}

#[test]
fn no_role_has_a_wildcard() {
    for (name, rules) in all_rules() {
        assert!(!rules.is_empty(), "{name} has rules");
        for rule in rules {
            let lists = [
                Some(rule.verbs.clone()),
                rule.api_groups.clone(),
                rule.resources.clone(),
                rule.resource_names.clone(),
                rule.non_resource_urls.clone(),
            ];
            for value in lists.iter().flatten().flatten() {
                assert!(!value.contains('*'), "{name}: wildcard in {rule:?}");
            }
        }
    }
    // And no role the operator creates for its operand has one either.
    for (role, rules) in rbac::created_roles().expect("created roles") {
        for rule in rules {
            assert!(
                !rule.verbs.iter().chain(rule.resources.iter().flatten()).any(|v| v.contains('*')),
                "{role}: {rule:?}"
            );
        }
    }
}

#[test]
fn the_cluster_role_covers_every_role_the_operator_creates() {
    let held = rules(&find(&install_documents(), "ClusterRole")["rules"]);
    for (role, granted) in rbac::created_roles().expect("created roles") {
        let missing = rbac::uncovered(&held, &granted);
        assert!(missing.is_empty(), "{role} grants what the operator does not hold: {missing:?}");
    }
    for kind in mesh_provisioner::plan::kinds::all_managed_kinds() {
        for verb in ["create", "delete", "get", "list", "patch", "watch"] {
            assert!(
                rbac::allows(&held, &kind.resource.group, &kind.resource.plural, None, verb),
                "{verb} {}",
                kind.resource.plural
            );
        }
    }
    // The controller's own reads and writes.
    for (group, resource, verb) in [
        ("meshoperator.dev", "meshinstallations", "watch"),
        ("meshoperator.dev", "meshinstallations", "patch"),
        ("meshoperator.dev", "meshinstallations/status", "patch"),
        ("events.k8s.io", "events", "create"),
        ("apps", "daemonsets", "patch"),
        ("apps", "deployments", "list"),
    ] {
        assert!(rbac::allows(&held, group, resource, None, verb), "{verb} {group}/{resource}");
    }
    let role = rules(&find(&install_documents(), "Role")["rules"]);
    for verb in ["get", "patch", "create"] {
        assert!(
            rbac::allows(&role, "coordination.k8s.io", "leases", Some(manifests::LEASE_NAME), verb),
            "{verb} lease"
        );
    }
    assert!(!rbac::allows(&role, "coordination.k8s.io", "leases", Some("someone-elses-lease"), "patch"));
}

#[test]
fn every_rule_in_deploy_has_a_comment_saying_why() {
    let text = read("deploy/install.yaml");
    for document in
        text.split("\n---\n").filter(|d| d.contains("\nkind: ClusterRole\n") || d.contains("\nkind: Role\n"))
    {
        let lines: Vec<&str> = document.lines().collect();
        let start = lines.iter().position(|l| *l == "rules:").expect("rules:");
        let mut rules = 0;
        for (i, line) in lines.iter().enumerate().skip(start + 1) {
            if line.starts_with("- ") {
                rules += 1;
                assert!(lines[i - 1].starts_with("# "), "rule at line {i} of a role has no comment: {line}");
            }
        }
        assert!(rules > 0);
    }
}

#[test]
fn the_deployment_is_hardened_and_probed() {
    let documents = install_documents();
    let deployment = find(&documents, "Deployment");
    assert_eq!(deployment["metadata"]["namespace"], manifests::NAMESPACE);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], manifests::NAME);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert!(sc["runAsUser"].as_i64().is_some_and(|uid| uid > 0), "a non-root UID");
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    assert!(sc["capabilities"]["add"].is_null());
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    for kind in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(c["resources"][kind][resource].is_string(), "resources.{kind}.{resource}");
        }
    }
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["ports"][0]["name"], "metrics");
    assert_eq!(c["ports"][0]["containerPort"], manifests::METRICS_PORT);
    let args = strings(&c["args"]);
    assert_eq!(args[0], "run");
    assert!(args.contains(&"--leader-elect"));
    assert!(
        args.iter().any(|a| a.starts_with("--metrics-addr=") && a.ends_with(&format!(":{}", manifests::METRICS_PORT)))
    );
    assert_eq!(c["image"], manifests::image());
    // The operator's own objects must not look like objects it manages (its caches select on this label).
    for document in &documents {
        assert!(
            document["metadata"]["labels"][mesh_provisioner::labels::MANAGED_BY]
                != mesh_provisioner::labels::MANAGED_BY_VALUE,
            "{} carries the managed-by label",
            document["kind"]
        );
    }
}

#[test]
fn the_dockerfile_builds_a_static_non_root_image() {
    let dockerfile = read("Dockerfile");
    let stages: Vec<&str> = dockerfile.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert!(stages.len() >= 2, "multi-stage: {stages:?}");
    let last = stages.last().expect("final stage");
    assert!(last.contains("distroless/static") || last.contains("scratch"), "minimal base: {last}");
    // The same build as `make image` (operator/image/build.sh): static glibc, profile `image`.
    let build_script = read("operator/image/build.sh");
    for (name, text) in [("Dockerfile", &dockerfile), ("operator/image/build.sh", &build_script)] {
        for part in [
            "RUSTFLAGS='-C target-feature=+crt-static'",
            "cargo build --locked --profile image --target",
            "-unknown-linux-gnu",
            "-p mesh-operator --bin mesh-operator",
        ] {
            assert!(text.contains(part), "{name} builds with {part:?}");
        }
    }
    let user = dockerfile.lines().rev().find(|l| l.starts_with("USER ")).expect("USER");
    assert!(user.contains(&manifests::RUN_AS.to_string()), "non-root UID {user}");
    let entrypoint = dockerfile.lines().find(|l| l.starts_with("ENTRYPOINT ")).expect("ENTRYPOINT");
    assert!(entrypoint.contains('['), "exec form, no shell: {entrypoint}");
}

/// Creating a MeshInstallation makes the operator act with its ClusterRole: it is a cluster-admin
/// level API. No role we ship may hand it to namespace admins or editors (aggregation into
/// `admin`/`edit`/`view`), and only the operator's own ClusterRole names the resource at all.
#[test]
fn mesh_installations_are_not_aggregated_into_user_roles() {
    for document in install_documents() {
        let labels = document["metadata"]["labels"].as_object().cloned().unwrap_or_default();
        let aggregating: Vec<&String> =
            labels.keys().filter(|k| k.starts_with("rbac.authorization.k8s.io/aggregate-to-")).collect();
        assert!(aggregating.is_empty(), "{} aggregates into {aggregating:?}", document["metadata"]["name"]);
        if !matches!(document["kind"].as_str(), Some("ClusterRole" | "Role")) {
            continue;
        }
        let names_it = document["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|rule| strings(&rule["resources"]).iter().any(|r| r.starts_with("meshinstallations")));
        if names_it {
            assert_eq!(
                (document["kind"].as_str(), document["metadata"]["name"].as_str()),
                (Some("ClusterRole"), Some("mesh-operator")),
                "only the operator's ClusterRole may grant access to MeshInstallations"
            );
        }
    }
    let csv = csv();
    let text = serde_json::to_string(&csv).expect("CSV");
    assert!(!text.contains("aggregate-to-"), "the bundle aggregates a role into the user-facing roles");
}
