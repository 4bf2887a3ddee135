//! A line diff between two versions of a document, for people: the common head and tail are
//! kept as context, and the middle is aligned by its longest common subsequence when it is
//! small enough to do so cheaply (otherwise it is shown as removed, then added). Each line
//! starts with `' '`, `'-'` or `'+'`.

/// Lines × lines of the middle above which it is not aligned (2 bytes a cell).
const MAX_CELLS: usize = 1_000_000;

/// Lines of a change summary at most (the audit record keeps a short one).
const SUMMARY_LINES: usize = 20;

pub fn diff(old: &str, new: &str) -> Vec<String> {
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (ma, mb) = (&a[head..a.len() - tail], &b[head..b.len() - tail]);
    let mut out: Vec<String> = a[..head].iter().map(|l| format!(" {l}")).collect();
    out.extend(middle(ma, mb));
    out.extend(a[a.len() - tail..].iter().map(|l| format!(" {l}")));
    out
}

/// Only the changed lines of [`diff`], at most [`SUMMARY_LINES`] of them.
pub fn summary(old: &str, new: &str) -> String {
    let changed: Vec<String> = diff(old, new)
        .into_iter()
        .filter(|l| !l.starts_with(' '))
        .collect();
    let mut text = changed
        .iter()
        .take(SUMMARY_LINES)
        .cloned()
        .collect::<Vec<_>>()
        .join("\n");
    if changed.len() > SUMMARY_LINES {
        text.push_str(&format!("\n… {} more", changed.len() - SUMMARY_LINES));
    }
    text
}

fn middle(a: &[&str], b: &[&str]) -> Vec<String> {
    if a.len().saturating_mul(b.len()) > MAX_CELLS {
        let gone = a.iter().map(|l| format!("-{l}"));
        return gone.chain(b.iter().map(|l| format!("+{l}"))).collect();
    }
    // lcs[i][j]: longest common subsequence of a[i..] and b[j..]. It is at most the shorter
    // side, which the capped product keeps ≤ 1,000: u16 holds it.
    let w = b.len() + 1;
    let mut lcs = vec![0u16; (a.len() + 1) * w];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i * w + j] = if a[i] == b[j] {
                lcs[(i + 1) * w + j + 1].saturating_add(1)
            } else {
                lcs[(i + 1) * w + j].max(lcs[i * w + j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::with_capacity(a.len() + b.len()));
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            out.push(format!(" {}", a[i]));
            (i, j) = (i + 1, j + 1);
        } else if lcs[(i + 1) * w + j] >= lcs[i * w + j + 1] {
            out.push(format!("-{}", a[i]));
            i += 1;
        } else {
            out.push(format!("+{}", b[j]));
            j += 1;
        }
    }
    out.extend(a[i..].iter().map(|l| format!("-{l}")));
    out.extend(b[j..].iter().map(|l| format!("+{l}")));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_changed_lines_between_shared_ones() {
        let old = "a\nb\nc\nd\ne\n";
        let new = "a\nB\nc\nd\nx\ne\n";
        assert_eq!(diff(old, new), [" a", "-b", "+B", " c", " d", "+x", " e"]);
        assert_eq!(summary(old, new), "-b\n+B\n+x");
        assert_eq!(diff("same\n", "same\n"), [" same"]);
        assert_eq!(diff("", "new"), ["+new"]);
        assert_eq!(diff("old", ""), ["-old"]);
    }

    #[test]
    fn a_huge_middle_is_replaced_whole_and_summaries_are_short() {
        let old: String = (0..1200).map(|i| format!("o{i}\n")).collect();
        let new: String = (0..1200).map(|i| format!("n{i}\n")).collect();
        let d = diff(&old, &new);
        assert_eq!(d.len(), 2400);
        assert!(d[..1200].iter().all(|l| l.starts_with('-')));
        let s = summary(&old, &new);
        assert_eq!(s.lines().count(), SUMMARY_LINES + 1);
        assert!(s.ends_with("… 2380 more"), "{s}");
    }
}
