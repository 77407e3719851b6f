//! Converts common Markdown (CommonMark with GitHub tables, strikethrough and task lists, what
//! LLMs write) to the subset DingTalk's markdown messages and AI cards render.
//!
//! DingTalk renders headings, bold, italic, links, images, ordered and unordered lists, block
//! quotes and line breaks (reference/openapi.md, markdown message). Everything else is turned
//! into something it renders, never dropped:
//!
//! | Markdown | becomes |
//! |---|---|
//! | `# Title` … `###### Title`, `**b**`, `*i*`, `[t](u)`, `![a](u)`, lists, `> quote` | kept |
//! | fenced or indented code block | each line as a quote line (`> line`), verbatim |
//! | `` `code` `` | its text |
//! | `~~struck~~` | its text |
//! | table | one line per row, cells joined by ` \| `, the header row bold |
//! | `- [x] done` / `- [ ] todo` | `- ☑ done` / `- ☐ todo` |
//! | nested list | two spaces of indent per level |
//! | `---` (rule) | a blank line |
//! | inline HTML (`<font color=…>`) | kept as written |
//! | a single line break | a line break (DingTalk shows it) |
//!
//! Paragraphs are separated by a blank line. The parser is `pulldown-cmark`; the conversion
//! never fails, and a half-written document (a stream cut mid-way) converts to what it shows
//! so far.
//!
//! ```
//! use dingtalk_core::markdown::to_dingtalk;
//! let md = "## Result\n\n| name | score |\n|---|---|\n| a | 1 |\n\n```\nlet x = 1;\n```";
//! assert_eq!(
//!     to_dingtalk(md),
//!     "## Result\n\n**name | score**\na | 1\n\n> let x = 1;"
//! );
//! ```

use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, Options, Parser, Tag, TagEnd};

/// Converts `markdown` to DingTalk's markdown subset (see the [module docs](self)).
pub fn to_dingtalk(markdown: &str) -> String {
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let mut w = Writer::default();
    for event in Parser::new_ext(markdown, options) {
        w.event(event);
    }
    let mut out = w.out;
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    out
}

#[derive(Default)]
struct Writer {
    out: String,
    /// Block-quote depth (code blocks add one while they last).
    quote: usize,
    /// Open lists: the next number of an ordered one, `None` for bullets.
    lists: Vec<Option<u64>>,
    /// A container (item, quote, code block) or a rule was just written: the next block goes
    /// right here, with no separator of its own.
    fresh: bool,
    /// Destinations of open links and images.
    links: Vec<String>,
    in_code: bool,
    /// The cells of the table row being read, and whether it is the header.
    row: Option<Vec<String>>,
    cell: Option<String>,
    in_head: bool,
}

impl Writer {
    fn push(&mut self, s: &str) {
        self.fresh = false;
        match &mut self.cell {
            Some(cell) => cell.push_str(s),
            None => self.out.push_str(s),
        }
    }

    fn prefix(&self) -> String {
        "> ".repeat(self.quote)
    }

    /// Starts a new line (with the quote prefix).
    fn line(&mut self) {
        if self.out.is_empty() {
            self.out.push_str(&self.prefix());
            return;
        }
        let p = self.prefix();
        self.out.push('\n');
        self.out.push_str(&p);
    }

    /// Starts a new block: a blank line after the previous one (a plain line inside lists).
    fn block(&mut self) {
        if self.fresh {
            self.fresh = false;
            return;
        }
        if self.out.is_empty() {
            self.out.push_str(&self.prefix());
            return;
        }
        if !self.lists.is_empty() {
            self.line();
            return;
        }
        let p = self.prefix();
        let q = p.trim_end().to_owned();
        self.out.push('\n');
        self.out.push_str(&q);
        self.out.push('\n');
        self.out.push_str(&p);
    }

    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => self.start(tag),
            Event::End(tag) => self.end(tag),
            Event::Text(t) => {
                if self.in_code {
                    let mut lines = t.split('\n').peekable();
                    while let Some(l) = lines.next() {
                        self.push(l);
                        if lines.peek().is_some_and(|next| !next.is_empty()) {
                            self.line();
                        }
                    }
                } else {
                    self.push(&t);
                }
            }
            Event::Code(t) | Event::InlineMath(t) | Event::DisplayMath(t) => self.push(&t),
            Event::Html(t) | Event::InlineHtml(t) => self.push(t.trim_end_matches('\n')),
            Event::FootnoteReference(t) => {
                self.push("[");
                self.push(&t);
                self.push("]");
            }
            Event::SoftBreak | Event::HardBreak => {
                if self.cell.is_some() {
                    self.push(" ");
                } else {
                    self.line();
                }
            }
            Event::Rule => {
                self.block();
                self.fresh = true;
            }
            Event::TaskListMarker(done) => self.push(if done { "☑ " } else { "☐ " }),
        }
    }

    fn start(&mut self, tag: Tag<'_>) {
        match tag {
            Tag::Paragraph => self.block(),
            Tag::Heading { level, .. } => {
                self.block();
                let n = match level {
                    HeadingLevel::H1 => 1,
                    HeadingLevel::H2 => 2,
                    HeadingLevel::H3 => 3,
                    HeadingLevel::H4 => 4,
                    HeadingLevel::H5 => 5,
                    HeadingLevel::H6 => 6,
                };
                self.push(&"#".repeat(n));
                self.push(" ");
            }
            Tag::BlockQuote(_) => {
                self.block();
                self.quote += 1;
                self.out.push_str("> ");
                self.fresh = true;
            }
            Tag::CodeBlock(kind) => {
                self.block();
                // Fenced or indented, with or without a language: the same quote lines.
                let _: CodeBlockKind<'_> = kind;
                self.quote += 1;
                self.out.push_str("> ");
                self.in_code = true;
            }
            Tag::List(start) => {
                if self.lists.is_empty() {
                    self.block();
                    // The first item goes on this line.
                    self.fresh = true;
                }
                self.lists.push(start);
            }
            Tag::Item => {
                if self.fresh {
                    self.fresh = false;
                } else {
                    self.line();
                }
                let depth = self.lists.len().saturating_sub(1);
                self.out.push_str(&"  ".repeat(depth));
                let marker = match self.lists.last_mut() {
                    Some(Some(n)) => {
                        let m = format!("{n}. ");
                        *n = n.saturating_add(1);
                        m
                    }
                    _ => "- ".to_owned(),
                };
                self.out.push_str(&marker);
                self.fresh = true;
            }
            Tag::Table(_) => self.block(),
            Tag::TableHead => {
                self.in_head = true;
                self.row = Some(Vec::new());
            }
            Tag::TableRow => self.row = Some(Vec::new()),
            Tag::TableCell => self.cell = Some(String::new()),
            Tag::Emphasis => self.push("*"),
            Tag::Strong => self.push("**"),
            Tag::Link { dest_url, .. } => {
                self.links.push(dest_url.into_string());
                self.push("[");
            }
            Tag::Image { dest_url, .. } => {
                self.links.push(dest_url.into_string());
                self.push("![");
            }
            _ => {}
        }
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::BlockQuote(_) => self.quote = self.quote.saturating_sub(1),
            TagEnd::CodeBlock => {
                self.in_code = false;
                self.quote = self.quote.saturating_sub(1);
            }
            TagEnd::List(_) => {
                self.lists.pop();
                self.fresh = false;
            }
            TagEnd::Item => self.fresh = false,
            TagEnd::TableCell => {
                if let (Some(cell), Some(row)) = (self.cell.take(), self.row.as_mut()) {
                    row.push(cell.trim().to_owned());
                }
            }
            TagEnd::TableHead | TagEnd::TableRow => {
                if let Some(row) = self.row.take() {
                    let text = row.join(" | ");
                    if !self.out.is_empty() && !self.out.ends_with('\n') && !self.out.ends_with(' ')
                    {
                        self.line();
                    }
                    if self.in_head {
                        self.out.push_str(&format!("**{text}**"));
                    } else {
                        self.out.push_str(&text);
                    }
                }
                self.in_head = false;
            }
            TagEnd::Emphasis => self.push("*"),
            TagEnd::Strong => self.push("**"),
            TagEnd::Link | TagEnd::Image => {
                let url = self.links.pop().unwrap_or_default();
                self.push("](");
                self.push(&url);
                self.push(")");
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::to_dingtalk;

    #[test]
    fn kept_constructs_stay() {
        let md = "# T\n\nSome **bold** and *it* with [a link](https://x.y/z) and ![img](https://x.y/i.png).\n\n> quoted\n\n1. one\n2. two\n\n- a\n- b";
        assert_eq!(
            to_dingtalk(md),
            "# T\n\nSome **bold** and *it* with [a link](https://x.y/z) and ![img](https://x.y/i.png).\n\n> quoted\n\n1. one\n2. two\n\n- a\n- b"
        );
    }

    #[test]
    fn code_becomes_quote_lines_and_inline_code_its_text() {
        assert_eq!(
            to_dingtalk("run `cargo test`:\n\n```rust\nfn main() {\n    x();\n}\n```\nafter"),
            "run cargo test:\n\n> fn main() {\n>     x();\n> }\n\nafter"
        );
    }

    #[test]
    fn tables_become_lines() {
        assert_eq!(
            to_dingtalk("| a | b |\n|---|:-:|\n| 1 | 2 |\n| 3 | 4 |"),
            "**a | b**\n1 | 2\n3 | 4"
        );
    }

    #[test]
    fn strikethrough_tasks_nesting_and_rules() {
        assert_eq!(
            to_dingtalk("~~old~~ new\n\n---\n\n- [x] done\n- [ ] todo\n  - sub\n\n3. c\n4. d"),
            "old new\n\n- ☑ done\n- ☐ todo\n  - sub\n\n3. c\n4. d"
        );
    }

    #[test]
    fn line_breaks_html_and_partial_input() {
        assert_eq!(
            to_dingtalk("a\nb  \nc <font color=#f00>red</font>"),
            "a\nb\nc <font color=#f00>red</font>"
        );
        // A stream cut mid-way: an unclosed fence and an unclosed emphasis.
        assert_eq!(to_dingtalk("x **y"), "x **y");
        assert_eq!(to_dingtalk("```\nlet a"), "> let a");
        assert_eq!(to_dingtalk(""), "");
    }

    #[test]
    fn loose_lists_and_quotes_with_paragraphs() {
        assert_eq!(to_dingtalk("- a\n\n- b\n\ntext"), "- a\n- b\n\ntext");
        assert_eq!(to_dingtalk("> one\n>\n> two"), "> one\n>\n> two");
    }
}
