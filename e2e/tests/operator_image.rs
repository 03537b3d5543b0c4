//! The operator image, as `make image` builds it into the local image store: it agrees with the
//! Dockerfile (the release path) and holds a static binary and what the binary reads at run time.

use std::collections::BTreeMap;

use mesh_e2e::dockerfile;
use mesh_e2e::image::{self, Image, OPERATOR_TAG};
use mesh_e2e::local_images::image_store;
use serde_json::Value;

fn read(path: &str) -> String {
    let path = format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn operator_image() -> Image {
    Image::open(&image_store(), OPERATOR_TAG).unwrap_or_else(|e| panic!("{e}"))
}

fn strings(value: &Value) -> Option<Vec<String>> {
    value.as_array().map(|items| items.iter().map(|i| i.as_str().unwrap_or_default().to_string()).collect())
}

fn env_of(image: &Image) -> BTreeMap<String, String> {
    strings(image.runtime("Env"))
        .unwrap_or_default()
        .into_iter()
        .filter_map(|pair| pair.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect()
}

#[test]
fn the_image_has_the_dockerfiles_entrypoint_user_ports_and_labels() {
    let stage = dockerfile::final_stage(&read("Dockerfile")).expect("the Dockerfile parses");
    let image = operator_image();
    assert_eq!(strings(image.runtime("Entrypoint")), stage.entrypoint, "Entrypoint");
    assert_eq!(strings(image.runtime("Cmd")), stage.cmd, "Cmd");
    assert_eq!(image.runtime("User").as_str(), stage.user.as_deref(), "User");
    let labels: BTreeMap<String, String> =
        serde_json::from_value(image.runtime("Labels").clone()).expect("Labels are strings");
    assert_eq!(labels, stage.labels, "Labels");
    let ports: Vec<String> =
        image.runtime("ExposedPorts").as_object().map(|p| p.keys().cloned().collect()).unwrap_or_default();
    assert_eq!(ports, stage.exposed_ports, "ExposedPorts");
    let env = env_of(&image);
    for (key, value) in &stage.env {
        assert_eq!(env.get(key), Some(value), "Env {key}");
    }
    assert_eq!(image.config["os"], "linux");
    assert!(stage.base.contains("distroless/static"), "the release image's base: {}", stage.base);
}

#[test]
fn the_entrypoint_is_a_static_executable_owned_by_root() {
    let image = operator_image();
    let entrypoint = strings(image.runtime("Entrypoint")).expect("an Entrypoint");
    let binary = image
        .file(&entrypoint[0])
        .expect("the layers read")
        .unwrap_or_else(|| panic!("{} is not in the image", entrypoint[0]));
    assert_eq!(binary.mode & 0o111, 0o111, "executable by anyone, as the user 65532 needs");
    assert_eq!(binary.mode & 0o022, 0, "not writable by the user it runs as");
    assert_eq!((binary.uid, binary.gid), (0, 0));
    image::check_static_elf(&binary.contents).unwrap_or_else(|e| panic!("{}: {e}", entrypoint[0]));
}

/// What distroless/static gives the release image and the operator uses: the CA bundle
/// (Azure Resource Manager's TLS roots, found through SSL_CERT_FILE), the user's passwd entry and
/// its home as working directory, nsswitch.conf for glibc's resolver.
#[test]
fn the_image_holds_what_the_binary_reads_at_run_time() {
    let image = operator_image();
    let env = env_of(&image);
    let bundle_path = env.get("SSL_CERT_FILE").expect("SSL_CERT_FILE names the CA bundle");
    let bundle = image.file(bundle_path).expect("layers").unwrap_or_else(|| panic!("{bundle_path} missing"));
    let certificates = String::from_utf8_lossy(&bundle.contents).matches("BEGIN CERTIFICATE").count();
    assert!(certificates >= 50, "{bundle_path} holds {certificates} certificates");
    assert_eq!(bundle.mode & 0o444, 0o444, "{bundle_path} is readable by the user");

    let user = image.runtime("User").as_str().expect("User").to_string();
    let uid = user.split(':').next().expect("uid");
    let passwd = image.file("/etc/passwd").expect("layers").expect("/etc/passwd");
    let passwd = String::from_utf8_lossy(&passwd.contents).to_string();
    let entry = passwd.lines().find(|l| l.split(':').nth(2) == Some(uid)).unwrap_or_else(|| panic!("no uid {uid}"));
    let home = entry.split(':').nth(5).expect("home");
    assert_eq!(image.runtime("WorkingDir").as_str(), Some(home), "the user's home is the working directory");
    let home_dir = image.file(home).expect("layers").unwrap_or_else(|| panic!("{home} missing"));
    assert_eq!(home_dir.uid.to_string(), uid, "{home} belongs to the user");

    let nsswitch = image.file("/etc/nsswitch.conf").expect("layers").expect("/etc/nsswitch.conf");
    assert!(String::from_utf8_lossy(&nsswitch.contents).contains("hosts: files dns"));
}

#[test]
fn a_dynamically_linked_executable_is_refused() {
    // The test binary itself is linked the ordinary way.
    let me = std::fs::read(std::env::current_exe().expect("current exe")).expect("read");
    let error = image::check_static_elf(&me).expect_err("a dynamic test binary");
    assert!(error.contains("dynamically linked"), "{error}");
    assert!(image::check_static_elf(b"#!/bin/sh\n").is_err());
}
