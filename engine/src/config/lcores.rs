//! `dpdk.cores`: EAL `--lcores` syntax.
//!
//! `ELEM[,ELEM...]`, where `ELEM` is `LCORES[@CPU]`, `LCORES` is `N`, `A-B`
//! or a group `(N,A-B,...)`, and `CPU` is `N` or `(N)`. Without `@`, each lcore
//! of `N` or `A-B` runs on the CPU of the same number ("0-1" = "0@0,1@1").
//! rvs pins every lcore to one CPU (workers busy-poll), so the floating CPU
//! sets EAL also accepts (`1@(0-3)`, a bare group `(0,6)`) are refused.

use super::MAX_LCORES;

/// Highest CPU number accepted (`CPU_SETSIZE` - 1).
const MAX_CPU: u32 = 1023;

/// One lcore and the CPU it runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LcoreMap {
    pub lcore: u32,
    pub cpu: u32,
}

/// Parses `cores`; the result is sorted by lcore id, so the first entry is
/// the lcore EAL makes its main (control) lcore.
pub fn parse_lcores(text: &str) -> Result<Vec<LcoreMap>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("is empty (expected e.g. \"0-1\" or \"0@0,1@1\")".to_string());
    }
    let mut out: Vec<LcoreMap> = Vec::new();
    for elem in split_top(text)? {
        let (lcores, cpu) = match elem.split_once('@') {
            Some((l, c)) => (l, Some(c)),
            None => (elem, None),
        };
        let grouped = lcores.starts_with('(');
        let lcore_ids = parse_set(lcores)?;
        let cpu = match cpu {
            Some(c) => match parse_set(c)?.as_slice() {
                [one] => Some(*one),
                _ => return Err(format!("`{elem}`: map lcores onto one CPU each, not a set")),
            },
            None if grouped && lcore_ids.len() > 1 => {
                return Err(format!(
                    "`{elem}`: a group without `@CPU` floats over several CPUs; pin it with `@`"
                ))
            }
            None => None,
        };
        for lcore in lcore_ids {
            if lcore >= MAX_LCORES {
                return Err(format!("lcore {lcore} is outside 0..{}", MAX_LCORES - 1));
            }
            if out.iter().any(|m| m.lcore == lcore) {
                return Err(format!("lcore {lcore} is listed twice"));
            }
            out.push(LcoreMap {
                lcore,
                cpu: cpu.unwrap_or(lcore),
            });
        }
    }
    out.sort();
    Ok(out)
}

/// Splits on the commas that are not inside parentheses.
fn split_top(text: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0u32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' if depth == 0 => depth = 1,
            '(' => return Err("nested parentheses".to_string()),
            ')' if depth == 1 => depth = 0,
            ')' => return Err("`)` without `(`".to_string()),
            ',' if depth == 0 => {
                parts.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("`(` without `)`".to_string());
    }
    parts.push(text[start..].trim());
    match parts.iter().find(|p| p.is_empty()) {
        Some(_) => Err("has an empty element".to_string()),
        None => Ok(parts),
    }
}

/// `N`, `A-B` or `(N,A-B,...)` -> the ids in it.
fn parse_set(text: &str) -> Result<Vec<u32>, String> {
    let text = text.trim();
    let inner = match text.strip_prefix('(') {
        Some(rest) => rest
            .strip_suffix(')')
            .ok_or_else(|| format!("`{text}`: `(` without `)`"))?,
        None => text,
    };
    let mut ids = Vec::new();
    for item in inner.split(',') {
        let item = item.trim();
        let (lo, hi) = match item.split_once('-') {
            Some((a, b)) => (number(a)?, number(b)?),
            None => (number(item)?, number(item)?),
        };
        if lo > hi {
            return Err(format!("`{item}`: range runs backwards"));
        }
        if hi > MAX_CPU {
            return Err(format!("`{item}`: {hi} is outside 0..{MAX_CPU}"));
        }
        ids.extend(lo..=hi);
    }
    Ok(ids)
}

fn number(text: &str) -> Result<u32, String> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{text}` is not a number"));
    }
    text.parse()
        .map_err(|_| format!("`{text}` is not a number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maps(text: &str) -> Vec<(u32, u32)> {
        parse_lcores(text)
            .unwrap()
            .into_iter()
            .map(|m| (m.lcore, m.cpu))
            .collect()
    }

    #[test]
    fn config_lcores_forms() {
        assert_eq!(maps("0-1"), [(0, 0), (1, 1)]);
        assert_eq!(maps("0@0,1@1,2@1"), [(0, 0), (1, 1), (2, 1)]);
        assert_eq!(maps("3,1"), [(1, 1), (3, 3)]);
        assert_eq!(maps("(1-2)@5, 0"), [(0, 0), (1, 5), (2, 5)]);
        assert_eq!(maps("0@(3)"), [(0, 3)]);
        assert_eq!(maps("(4)"), [(4, 4)]);
    }

    #[test]
    fn config_lcores_errors() {
        for bad in [
            "", "a", "0-", "-1", "2-1", "0,,1", "0,0", "1@(0-3)", "(0,6)", "(0", "0)", "128",
            "0@1024", "((0))", "0@",
        ] {
            assert!(parse_lcores(bad).is_err(), "{bad:?} should fail");
        }
    }
}
