//! Reads the image metadata a Dockerfile's final stage sets — `USER`, `ENTRYPOINT`, `CMD`,
//! `EXPOSE`, `LABEL`, `ENV`, `WORKDIR` — so a test can compare it with an image built another way.
//! Only what this project's Dockerfile uses: exec-form (JSON) `ENTRYPOINT`/`CMD`, `key="value"`
//! labels and env, line continuations with `\`, `#` comments.

use std::collections::BTreeMap;

/// What the final stage of a Dockerfile puts in the image config.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FinalStage {
    /// The `FROM` line's image.
    pub base: String,
    /// `USER`.
    pub user: Option<String>,
    /// `ENTRYPOINT`, exec form.
    pub entrypoint: Option<Vec<String>>,
    /// `CMD`, exec form.
    pub cmd: Option<Vec<String>>,
    /// `EXPOSE`d ports, as `8080/tcp`.
    pub exposed_ports: Vec<String>,
    /// `LABEL`s.
    pub labels: BTreeMap<String, String>,
    /// `ENV`.
    pub env: BTreeMap<String, String>,
    /// `WORKDIR`.
    pub workdir: Option<String>,
}

/// Instructions joined across `\` continuations, comments and blank lines dropped.
fn instructions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.starts_with('#') || trimmed.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// `key="value with spaces" key2=value2` pairs.
fn pairs(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=').ok_or_else(|| format!("expected key=value in {rest:?}"))?;
        let (value, after) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"').ok_or_else(|| format!("unterminated quote in {rest:?}"))?;
                (quoted[..end].to_string(), &quoted[end + 1..])
            }
            None => {
                let end = after.find(char::is_whitespace).unwrap_or(after.len());
                (after[..end].to_string(), &after[end..])
            }
        };
        out.push((key.trim().to_string(), value));
        rest = after.trim_start();
    }
    Ok(out)
}

/// Parses the Dockerfile and returns what its last stage sets.
pub fn final_stage(text: &str) -> Result<FinalStage, String> {
    let mut stage = None;
    for instruction in instructions(text) {
        let (keyword, args) = instruction.split_once(char::is_whitespace).unwrap_or((&instruction, ""));
        let args = args.trim();
        let keyword = keyword.to_ascii_uppercase();
        if keyword == "FROM" {
            let base = args.split_whitespace().next().unwrap_or_default().to_string();
            stage = Some(FinalStage { base, ..Default::default() });
            continue;
        }
        let Some(stage) = stage.as_mut() else { continue };
        let exec_form = || -> Result<Vec<String>, String> {
            serde_json::from_str(args).map_err(|e| format!("{keyword} {args}: not exec form (a JSON array): {e}"))
        };
        match keyword.as_str() {
            "USER" => stage.user = Some(args.to_string()),
            "ENTRYPOINT" => stage.entrypoint = Some(exec_form()?),
            "CMD" => stage.cmd = Some(exec_form()?),
            "WORKDIR" => stage.workdir = Some(args.to_string()),
            "EXPOSE" => stage.exposed_ports.extend(
                args.split_whitespace().map(|p| if p.contains('/') { p.to_string() } else { format!("{p}/tcp") }),
            ),
            "LABEL" => stage.labels.extend(pairs(args)?),
            "ENV" => stage.env.extend(pairs(args)?),
            _ => {}
        }
    }
    stage.ok_or_else(|| "no FROM".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_last_stage_with_continuations_and_quotes() {
        let text = "FROM a AS build\nUSER 1\nLABEL x=1\n\
                    # comment\nFROM b:nonroot\nLABEL one=\"a b\" \\\n      two=c\nUSER 65532:65532\n\
                    EXPOSE 8080\nENTRYPOINT [\"/bin/x\"]\nCMD [\"run\", \"--y\"]\n";
        let stage = final_stage(text).expect("parses");
        assert_eq!(stage.base, "b:nonroot");
        assert_eq!(stage.user.as_deref(), Some("65532:65532"));
        assert_eq!(stage.labels, BTreeMap::from([("one".into(), "a b".into()), ("two".into(), "c".into())]));
        assert_eq!(stage.exposed_ports, ["8080/tcp"]);
        assert_eq!(stage.entrypoint, Some(vec!["/bin/x".to_string()]));
        assert_eq!(stage.cmd, Some(vec!["run".to_string(), "--y".to_string()]));
    }

    #[test]
    fn shell_form_entrypoints_are_refused() {
        assert!(final_stage("FROM a\nENTRYPOINT /bin/x run\n").is_err());
    }
}
