//! Templates like `order#{Keys.orderId}`: text with attributes of a stream
//! record, parsed once when the rules are compiled and rendered per record.

use serde_json::Value as Json;

use super::record::{Image, Record};

/// A template like `order#{Keys.orderId}`.
#[derive(Clone, Debug, PartialEq)]
pub struct Template(Vec<Part>);

#[derive(Clone, Debug, PartialEq)]
enum Part {
    Text(String),
    Attr { image: Image, name: String },
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find('{') {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            let end = rest[start..]
                .find('}')
                .ok_or_else(|| format!("template {text:?} has an unclosed '{{'"))?
                + start;
            let inner = &rest[start + 1..end];
            let (image, name) = inner.split_once('.').ok_or_else(|| {
                format!("template {text:?}: {{{inner}}} must be like {{Keys.name}}")
            })?;
            let image = match image {
                "Keys" => Image::Keys,
                "NewImage" => Image::New,
                "OldImage" => Image::Old,
                "Image" => Image::Either,
                other => {
                    return Err(format!(
                        "template {text:?}: {other} is not Keys, NewImage, OldImage or Image"
                    ));
                }
            };
            if name.is_empty() {
                return Err(format!("template {text:?}: an attribute name is missing"));
            }
            parts.push(Part::Attr {
                image,
                name: name.to_owned(),
            });
            rest = &rest[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Template(parts))
    }

    pub(super) fn render(&self, record: &Record<'_>) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Attr { image, name } => {
                    let v = record
                        .attr(*image, name)
                        .ok_or_else(|| format!("the record has no {}.{name}", image.describe()))?;
                    out.push_str(
                        &scalar(v).ok_or_else(|| format!("{name} is not a string or number"))?,
                    );
                }
            }
        }
        Ok(out)
    }
}

/// The text of a DynamoDB-JSON scalar (`{"S": "x"}`, `{"N": "1"}`).
fn scalar(v: &Json) -> Option<String> {
    v.get("S")
        .or_else(|| v.get("N"))
        .and_then(Json::as_str)
        .map(str::to_owned)
}
