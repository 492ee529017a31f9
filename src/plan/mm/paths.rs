//! A task list's cells as paths: a Windows source through the share map, a site's
//! address as folders, a library and its subfolders, each name checked.

/// The components of a Windows path (`\\server\share\a` → `server`, `share`, `a`;
/// `D:\a` → `D:`, `a`), or `None` when it is not one.
pub(super) fn windows_components(text: &str) -> Option<Vec<&str>> {
    let unc = text
        .strip_prefix("\\\\")
        .or_else(|| text.strip_prefix("//"));
    let bytes = text.as_bytes();
    let drive = bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':';
    if unc.is_none() && !drive {
        return None;
    }
    let rest = unc.unwrap_or(text);
    let parts: Vec<&str> = rest.split(['\\', '/']).filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        return None;
    }
    Some(parts)
}

/// Checks a folder name taken from the list.
pub(super) fn folder_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() || name == "." || name == ".." {
        return Err(format!("`{name}` cannot be a folder name"));
    }
    if name.contains(['/', '\\', '\0']) {
        return Err(format!(
            "`{name}` cannot be a folder name: it holds a path separator"
        ));
    }
    Ok(name.to_string())
}

/// The source as a path of this machine.
pub(super) fn source_path(text: &str, shares: &[(String, String)]) -> Result<String, String> {
    if text.is_empty() {
        return Err("the file share path is missing".to_string());
    }
    if text.starts_with('/') {
        let parts: Vec<&str> = text.split('/').filter(|p| !p.is_empty()).collect();
        for part in &parts {
            folder_name(part)?;
        }
        return Ok(format!(
            "/{}",
            parts
                .iter()
                .map(|p| escape_dollar(p))
                .collect::<Vec<_>>()
                .join("/")
        ));
    }
    let Some(components) = windows_components(text).filter(|c| {
        // A share path names a server and a share.
        c.len() >= 2 || !(text.starts_with("\\\\") || text.starts_with("//"))
    }) else {
        return Err(format!(
            "`{text}` is not an absolute path: expected \\\\server\\share\\folder, D:\\folder or /mounted/folder"
        ));
    };
    let lower: Vec<String> = components.iter().map(|c| c.to_lowercase()).collect();
    let best = shares
        .iter()
        .filter_map(|(prefix, folder)| {
            let prefix: Vec<String> = windows_components(prefix)?
                .iter()
                .map(|c| c.to_lowercase())
                .collect();
            lower.starts_with(&prefix).then_some((prefix.len(), folder))
        })
        .max_by_key(|(len, _)| *len);
    let Some((len, folder)) = best else {
        let share = if text.starts_with("\\\\") || text.starts_with("//") {
            format!("\\\\{}\\{}", components[0], components[1])
        } else {
            format!("{}\\", components[0])
        };
        return Err(format!(
            "`{text}` is a Windows path: say where this machine mounts it, as --share-map '{share}=/mnt/...'"
        ));
    };
    let mut path = folder.clone();
    for part in &components[len..] {
        let part = folder_name(part)?;
        path.push('/');
        path.push_str(&escape_dollar(&part));
    }
    Ok(path)
}

/// The folders of a site: `https://contoso.sharepoint.com/sites/finance` → `sites`,
/// `finance`; a OneDrive user's address `ann@contoso.com` → `personal`,
/// `ann_contoso_com`, as OneDrive names it.
pub(super) fn site_folders(text: &str) -> Result<Vec<String>, String> {
    let expected = "expected a SharePoint site's address (https://contoso.sharepoint.com/sites/finance) or a OneDrive user's e-mail address";
    if text.is_empty() {
        return Err(format!("the site is missing: {expected}"));
    }
    if let Some((scheme, rest)) = text.split_once("://") {
        if !scheme.eq_ignore_ascii_case("https") && !scheme.eq_ignore_ascii_case("http") {
            return Err(format!("`{text}`: {expected}"));
        }
        let rest = rest.split(['?', '#']).next().unwrap_or("");
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        if host.is_empty() {
            return Err(format!("`{text}` has no host: {expected}"));
        }
        let mut folders = Vec::new();
        for segment in path.split('/').filter(|s| !s.is_empty()) {
            let decoded = percent_encoding::percent_decode_str(segment)
                .decode_utf8()
                .map_err(|_| format!("`{segment}` in `{text}` is not UTF-8 once decoded"))?;
            if decoded.eq_ignore_ascii_case("_layouts") {
                return Err(format!(
                    "`{text}` is a page of the site, not the site: leave out `/_layouts/...`"
                ));
            }
            folders.push(folder_name(&decoded)?);
        }
        return Ok(folders);
    }
    if let Some((user, domain)) = text.split_once('@')
        && !user.is_empty()
        && domain.contains('.')
        && !text.contains(['/', '\\', ' '])
    {
        let name: String = text
            .to_lowercase()
            .chars()
            .map(|c| if c == '@' || c == '.' { '_' } else { c })
            .collect();
        return Ok(vec!["personal".to_string(), folder_name(&name)?]);
    }
    Err(format!("`{text}`: {expected}"))
}

pub(super) fn library_name(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("the document library is missing (for OneDrive: Documents)".to_string());
    }
    folder_name(text)
}

pub(super) fn subfolders(text: &str) -> Result<Vec<String>, String> {
    text.split(['/', '\\'])
        .filter(|s| !s.trim().is_empty())
        .map(folder_name)
        .collect()
}

/// `$` in a name from the list stays a `$` in the plan (where `${…}` names a variable).
pub(super) fn escape_dollar(text: &str) -> String {
    text.replace('$', "$$")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sites_become_folders() {
        assert_eq!(
            site_folders("https://contoso.sharepoint.com/sites/Finance%20Team/").unwrap(),
            ["sites", "Finance Team"]
        );
        assert_eq!(
            site_folders("Ann.Lee@Contoso.com").unwrap(),
            ["personal", "ann_lee_contoso_com"]
        );
        assert!(site_folders("https://contoso.sharepoint.com/sites/a/../b").is_err());
        assert!(site_folders("https://x/sites/a/_layouts/15/onedrive.aspx").is_err());
        assert!(site_folders("ftp://x/y").is_err());
        assert!(site_folders("finance").is_err());
    }

    #[test]
    fn windows_sources_need_a_mount() {
        let shares = [("\\\\Contoso\\FileShare".to_string(), "/mnt/fs".to_string())];
        assert_eq!(
            source_path("\\\\contoso\\fileshare\\Dept 1\\$x", &shares).unwrap(),
            "/mnt/fs/Dept 1/$$x"
        );
        let missing = source_path("\\\\other\\share\\a", &shares).unwrap_err();
        assert!(
            missing.contains("--share-map '\\\\other\\share=/mnt/...'"),
            "{missing}"
        );
        assert!(
            source_path("D:\\data", &shares)
                .unwrap_err()
                .contains("'D:\\=/mnt/...'")
        );
        assert!(source_path("relative\\x", &shares).is_err());
        assert!(source_path("\\\\contoso\\fileshare\\..\\x", &shares).is_err());
        assert_eq!(source_path("/srv/a//b/", &shares).unwrap(), "/srv/a/b");
    }
}
