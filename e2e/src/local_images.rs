//! The local image store the local control plane runs pods from (an OCI image layout, see
//! `e2e/cluster/README.md`): where it is, and a tiny image for tests built from Debian's static
//! busybox with `umoci` (both installed by `make cluster`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// `$MESH_IMAGE_STORE`, else `~/.cache/mesh-operator/images` (the local control plane's default).
pub fn image_store() -> PathBuf {
    if let Some(dir) = std::env::var_os("MESH_IMAGE_STORE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    home.join(".cache/mesh-operator/images")
}

/// Whether `tag` is in the store's index.
pub fn has_tag(store: &Path, tag: &str) -> bool {
    let Ok(index) = std::fs::read_to_string(store.join("index.json")) else { return false };
    let Ok(index) = serde_json::from_str::<serde_json::Value>(&index) else { return false };
    index["manifests"].as_array().is_some_and(|manifests| {
        manifests.iter().any(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str() == Some(tag))
    })
}

fn run(what: &str, command: &mut Command) -> Result<(), String> {
    let output = command.output().map_err(|e| format!("{what}: {e}"))?;
    if !output.status.success() {
        return Err(format!("{what} failed: {}", String::from_utf8_lossy(&output.stderr).trim()));
    }
    Ok(())
}

/// Builds `tag` (if missing): one layer with `/bin/busybox`, entrypoint `/bin/busybox`, user
/// 65532.
pub fn ensure_busybox_image(tag: &str) -> Result<PathBuf, String> {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .ok_or("busybox is not installed (apt-get install busybox-static; `make cluster` does it as root)")?;
    ensure_static_image(tag, busybox)
}

/// Builds `tag` (if missing): one layer with the static `binary` as `/bin/<its name>`, which is
/// the entrypoint; user 65532. Writers of the store take `flock <store>/.lock`.
pub fn ensure_static_image(tag: &str, binary: &Path) -> Result<PathBuf, String> {
    // One build at a time in this process (tests run in parallel); the flock covers other processes.
    static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = BUILD.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let store = image_store();
    if has_tag(&store, tag) {
        return Ok(store);
    }
    let name = binary.file_name().and_then(|n| n.to_str()).ok_or("binary without a name")?;
    std::fs::create_dir_all(&store).map_err(|e| format!("creating {}: {e}", store.display()))?;
    let staging = std::env::temp_dir().join(format!("mesh-e2e-image-{name}-{}", std::process::id()));
    std::fs::create_dir_all(staging.join("bin")).map_err(|e| e.to_string())?;
    std::fs::copy(binary, staging.join("bin").join(name)).map_err(|e| format!("copying {}: {e}", binary.display()))?;
    let image = format!("{}:{tag}", store.display());
    // Under the lock: create the layout if needed (umoci init refuses an existing directory, and
    // the lock file lives in it), and build only if no other writer tagged it meanwhile.
    let script = format!(
        "set -e; cd '{store}'; \
         [ -f oci-layout ] || echo '{{\"imageLayoutVersion\":\"1.0.0\"}}' > oci-layout; \
         [ -f index.json ] || echo '{{\"schemaVersion\":2,\"manifests\":[]}}' > index.json; \
         mkdir -p blobs/sha256; \
         grep -qF '\"org.opencontainers.image.ref.name\":\"{tag}\"' index.json && exit 0; \
         umoci new --image '{image}'; \
         umoci insert --image '{image}' '{bin}' /bin; \
         umoci config --image '{image}' --config.entrypoint /bin/{name} --config.user 65532:65532 --config.workingdir /",
        store = store.display(),
        bin = staging.join("bin").display(),
    );
    let result = run(
        &format!("building image {tag} with umoci"),
        Command::new("flock").arg(store.join(".lock")).args(["sh", "-c", &script]),
    );
    let _ = std::fs::remove_dir_all(&staging);
    result.map(|()| store)
}

/// Builds OSM v1.2.4's control-plane images and the chart's `curlimages/curl` init image into the
/// store, as `make cluster` does (`e2e/osm/build.sh --with-curl`; seconds when warm): for suites
/// that need OSM's real control plane also when run on their own after a plain `cargo test`.
pub fn ensure_osm_images() -> Result<(), String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../e2e/osm/build.sh");
    run(
        "e2e/osm/build.sh --with-curl",
        Command::new("bash").arg(script).arg("--with-curl").arg(crate::cluster::bin_dir()).arg(image_store()),
    )
}

/// Whether `tag` is one of OSM's control-plane images or the chart's init image
/// (`e2e/osm/build.sh --with-curl`).
fn is_osm_image(tag: &str) -> bool {
    tag.starts_with("openservicemesh/") || tag.starts_with("curlimages/curl:")
}

/// A store with every image of the local image store but OSM's (`<store>.no-osm`: its own
/// `index.json`, the same blobs through a symlink), for suites that need OSM simulated
/// ([`crate::harness::Need::SimulatedOsm`]). Its index is rewritten on every call.
pub fn store_without_osm() -> Result<PathBuf, String> {
    let store = image_store();
    let copy = store.with_extension("no-osm");
    std::fs::create_dir_all(store.join("blobs")).map_err(|e| format!("creating {}: {e}", store.display()))?;
    std::fs::create_dir_all(&copy).map_err(|e| format!("creating {}: {e}", copy.display()))?;
    let index = std::fs::read_to_string(store.join("index.json"))
        .unwrap_or_else(|_| r#"{"schemaVersion":2,"manifests":[]}"#.to_string());
    let mut index: serde_json::Value =
        serde_json::from_str(&index).map_err(|e| format!("{}/index.json: {e}", store.display()))?;
    if let Some(manifests) = index["manifests"].as_array_mut() {
        manifests.retain(|m| !m["annotations"]["org.opencontainers.image.ref.name"].as_str().is_some_and(is_osm_image));
    }
    std::fs::write(copy.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).map_err(|e| e.to_string())?;
    let blobs = copy.join("blobs");
    if std::fs::symlink_metadata(&blobs).is_err() {
        std::os::unix::fs::symlink(store.join("blobs"), &blobs)
            .map_err(|e| format!("linking {}: {e}", blobs.display()))?;
    }
    let staged = copy.join("index.json.tmp");
    std::fs::write(&staged, index.to_string()).map_err(|e| format!("writing {}: {e}", staged.display()))?;
    std::fs::rename(&staged, copy.join("index.json")).map_err(|e| e.to_string())?;
    Ok(copy)
}
