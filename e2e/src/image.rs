//! Reads images from the local OCI image store ([`crate::local_images::image_store`], an OCI image
//! layout, one tag per image), as `make image` writes them and the local control plane runs them:
//! the image config, and files of the root filesystem.
//!
//! Also: whether an ELF executable is static (no program interpreter, no needed libraries), which
//! an image without libc requires.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The tag `make image` writes.
pub const OPERATOR_TAG: &str = "mesh-operator:dev";

/// Annotation naming a manifest's tag in `index.json`.
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// One image of an OCI layout: its manifest and config.
#[derive(Debug)]
pub struct Image {
    dir: PathBuf,
    /// The image manifest.
    pub manifest: Value,
    /// The image configuration (`config` holds Entrypoint, Cmd, User, Labels, …).
    pub config: Value,
}

impl Image {
    /// The image tagged `tag` in the layout at `dir`.
    pub fn open(dir: &Path, tag: &str) -> Result<Image, String> {
        let index = read_json(&dir.join("index.json"))
            .map_err(|e| format!("{e} (is {} an OCI image layout? `make image` writes one)", dir.display()))?;
        let descriptor = index["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["annotations"][REF_NAME] == tag)
            .ok_or_else(|| format!("no image tagged {tag} in {}: run `make image`", dir.display()))?;
        let manifest = read_json(&blob_path(dir, descriptor)?)?;
        let config = read_json(&blob_path(dir, &manifest["config"])?)?;
        Ok(Image { dir: dir.to_path_buf(), manifest, config })
    }

    /// `config.<key>` of the image configuration.
    pub fn runtime(&self, key: &str) -> &Value {
        &self.config["config"][key]
    }

    /// The contents of the regular file at `path` (absolute) in the image's root filesystem, with
    /// its mode and owner, as the last layer holding it has it.
    pub fn file(&self, path: &str) -> Result<Option<ImageFile>, String> {
        let wanted = path.trim_start_matches('/').trim_end_matches('/');
        let mut found = None;
        for layer in self.manifest["layers"].as_array().into_iter().flatten() {
            let blob = std::fs::File::open(blob_path(&self.dir, layer)?).map_err(|e| e.to_string())?;
            let media_type = layer["mediaType"].as_str().unwrap_or_default();
            let reader: Box<dyn Read> = if media_type.ends_with("+gzip") {
                Box::new(flate2::read::GzDecoder::new(blob))
            } else if media_type.ends_with(".tar") {
                Box::new(blob)
            } else {
                return Err(format!("layer media type {media_type} is not a tar or tar+gzip"));
            };
            let mut archive = tar::Archive::new(reader);
            for entry in archive.entries().map_err(|e| format!("reading a layer: {e}"))? {
                let mut entry = entry.map_err(|e| format!("reading a layer entry: {e}"))?;
                let name = entry
                    .path()
                    .map_err(|e| e.to_string())?
                    .to_string_lossy()
                    .trim_start_matches("./")
                    .trim_end_matches('/')
                    .to_string();
                if name != wanted {
                    continue;
                }
                let header = entry.header();
                let mode = header.mode().map_err(|e| e.to_string())?;
                let uid = header.uid().map_err(|e| e.to_string())?;
                let gid = header.gid().map_err(|e| e.to_string())?;
                let mut contents = Vec::new();
                entry.read_to_end(&mut contents).map_err(|e| e.to_string())?;
                found = Some(ImageFile { contents, mode, uid, gid });
            }
        }
        Ok(found)
    }
}

/// A file of an image's root filesystem.
#[derive(Debug)]
pub struct ImageFile {
    /// Its bytes.
    pub contents: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    serde_json::from_slice(&text).map_err(|e| format!("parsing {}: {e}", path.display()))
}

/// Where a descriptor's blob is, checked to be a sha256 digest (no path tricks from a bad index).
fn blob_path(dir: &Path, descriptor: &Value) -> Result<PathBuf, String> {
    let digest = descriptor["digest"].as_str().ok_or("a descriptor without a digest")?;
    let hex = digest.strip_prefix("sha256:").ok_or_else(|| format!("digest {digest} is not sha256"))?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("digest {digest} is malformed"));
    }
    Ok(dir.join("blobs/sha256").join(hex))
}

/// Checks `bytes` is an x86-64 or aarch64 ELF executable that runs without a dynamic loader: no
/// `PT_INTERP` program header and no `DT_NEEDED` entry (a static-pie binary keeps a `PT_DYNAMIC`
/// for its own relocations, but needs no library).
pub fn check_static_elf(bytes: &[u8]) -> Result<(), String> {
    const PT_DYNAMIC: u32 = 2;
    const PT_INTERP: u32 = 3;
    const DT_NEEDED: u64 = 1;
    let u16_at = |at: usize| bytes.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u32_at = |at: usize| bytes.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let u64_at =
        |at: usize| bytes.get(at..at + 8).map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]));
    if bytes.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err("not an ELF file".into());
    }
    if bytes.get(4) != Some(&2) || bytes.get(5) != Some(&1) {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let truncated = || "truncated ELF header".to_string();
    let phoff = u64_at(0x20).ok_or_else(truncated)? as usize;
    let phentsize = u16_at(0x36).ok_or_else(truncated)?;
    let phnum = u16_at(0x38).ok_or_else(truncated)?;
    for i in 0..phnum {
        let header = phoff + i * phentsize;
        let kind = u32_at(header).ok_or_else(truncated)?;
        if kind == PT_INTERP {
            let offset = u64_at(header + 0x08).ok_or_else(truncated)? as usize;
            let size = u64_at(header + 0x20).ok_or_else(truncated)? as usize;
            let interpreter = bytes.get(offset..offset + size).map(String::from_utf8_lossy).unwrap_or_default();
            return Err(format!("dynamically linked: program interpreter {}", interpreter.trim_end_matches('\0')));
        }
        if kind == PT_DYNAMIC {
            let offset = u64_at(header + 0x08).ok_or_else(truncated)? as usize;
            let size = u64_at(header + 0x20).ok_or_else(truncated)? as usize;
            for entry in (offset..offset + size).step_by(16) {
                match u64_at(entry) {
                    Some(0) | None => break,
                    Some(DT_NEEDED) => return Err("dynamically linked: it needs shared libraries (DT_NEEDED)".into()),
                    Some(_) => {}
                }
            }
        }
    }
    Ok(())
}
