//! Aligned text tables for human output. Cells are cut at 60 characters and
//! control characters are replaced, so mail content cannot break the layout
//! or the terminal.

pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

const MAX_CELL: usize = 60;

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows
            .push(cells.into_iter().map(|c| clean(&c)).collect());
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                if i < widths.len() {
                    widths[i] = widths[i].max(c.chars().count());
                }
            }
        }
        let mut out = String::new();
        for r in std::iter::once(&self.header).chain(self.rows.iter()) {
            let mut line = String::new();
            for (i, c) in r.iter().enumerate() {
                let w = widths.get(i).copied().unwrap_or(0);
                line.push_str(c);
                if i + 1 < r.len() {
                    line.push_str(&" ".repeat(w.saturating_sub(c.chars().count()) + 2));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    pub fn print(&self) {
        use std::io::Write;
        // A closed pipe (`| head`) is not an error worth a panic.
        let _ = std::io::stdout().write_all(self.render().as_bytes());
    }
}

fn clean(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_CELL)
        .collect();
    if s.chars().count() > MAX_CELL {
        out.pop();
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_cells_are_clean() {
        let mut t = Table::new(&["A", "B"]);
        t.row(vec!["long value".into(), "x\ny".into()]);
        t.row(vec!["s".into(), "z".into()]);
        let r = t.render();
        let lines: Vec<&str> = r.lines().collect();
        assert_eq!(lines[0], "A           B");
        assert_eq!(lines[1], "long value  x y");
        assert_eq!(lines[2], "s           z");
    }
}
