//! Every relative link in README.md and docs/*.md points at a file of the repository, so
//! that a fresh clone (and nothing outside it) is enough to read the documentation.

use std::fs;
use std::path::{Path, PathBuf};

/// The targets of `[text](target)` links in a Markdown text.
fn link_targets(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        if let Some(end) = rest.find(')') {
            out.push(&rest[..end]);
            rest = &rest[end..];
        }
    }
    out
}

#[test]
fn every_relative_doc_link_resolves_inside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages = vec![root.join("README.md")];
    for entry in fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    let root = root.canonicalize().unwrap();
    let mut checked = 0;
    for page in &pages {
        let text = fs::read_to_string(page).unwrap();
        for target in link_targets(&text) {
            if target.contains("://") || target.starts_with('#') || target.starts_with("mailto:") {
                continue;
            }
            let file = target.split('#').next().unwrap();
            let resolved: PathBuf = page.parent().unwrap().join(file);
            let resolved = resolved
                .canonicalize()
                .unwrap_or_else(|e| panic!("{}: link {target:?}: {e}", page.display()));
            assert!(
                resolved.starts_with(&root),
                "{}: link {target:?} leaves the repository",
                page.display()
            );
            checked += 1;
        }
    }
    assert!(
        checked > 20,
        "only {checked} links found: is the parser broken?"
    );
}

#[test]
fn the_link_parser_finds_links() {
    assert_eq!(
        link_targets("see [a](x.md) and ![b](../y.svg#z) (not a link)"),
        ["x.md", "../y.svg#z"]
    );
}
