//! The two formats `/metrics` speaks, chosen by the caller's `Accept` header: OpenMetrics 1.0, which the
//! registry encodes and Prometheus asks for first, and Prometheus text 0.0.4 for every other client
//! (`promtool check metrics`, older scrapers, curl). Each is served under its own `Content-Type`.

use std::fmt::Write;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    Text,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
        }
    }

    /// OpenMetrics when the `Accept` values name it (version 1.0.0, 0.0.1 or none) with a quality above 0
    /// and no lower than any range covering plain text; else 0.0.4 text, also for no or an unusable header.
    pub fn negotiate<'a>(accept: impl IntoIterator<Item = &'a str>) -> Format {
        let mut openmetrics = 0.0f32;
        let mut text = 0.0f32;
        for range in accept.into_iter().flat_map(|value| value.split(',')) {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let mut quality = 1.0f32;
            let mut version = None;
            for parameter in parts {
                let (key, value) = parameter.split_once('=').unwrap_or((parameter, ""));
                let value = value.trim().trim_matches('"');
                match key.trim().to_ascii_lowercase().as_str() {
                    // An unreadable quality makes the range unusable rather than preferred.
                    "q" => quality = value.parse().unwrap_or(0.0f32).clamp(0.0, 1.0),
                    "version" => version = Some(value),
                    _ => {}
                }
            }
            match media.as_str() {
                "application/openmetrics-text"
                    if version.is_none_or(|v| v == "1.0.0" || v == "0.0.1") =>
                {
                    openmetrics = openmetrics.max(quality);
                }
                "text/plain" | "text/*" | "*/*" => text = text.max(quality),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= text {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }
}

/// The 0.0.4 text equivalent of the registry's OpenMetrics text: a counter's `# HELP`/`# TYPE` name gains the
/// `_total` its samples carry (in 0.0.4 they must match), `info` becomes a gauge named `_info`, `unknown`
/// becomes `untyped`, and `# UNIT` and `# EOF` go. Samples are the same in both (no exemplars are recorded).
pub fn to_text(openmetrics: &str) -> String {
    let mut text = String::with_capacity(openmetrics.len() + 256);
    // prometheus-client writes each family's HELP just before its TYPE.
    let mut help: Option<(&str, &str)> = None;
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest.split_once(' ').unwrap_or((rest, "")));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let (suffix, kind) = match kind {
                "counter" => ("_total", "counter"),
                "gauge" | "histogram" | "summary" => ("", kind),
                "info" => ("_info", "gauge"),
                _ => ("", "untyped"),
            };
            // Writing into a String cannot fail.
            if let Some((_, help)) = help.take().filter(|(family, _)| *family == name) {
                let _ = writeln!(text, "# HELP {name}{suffix} {help}");
            }
            let _ = writeln!(text, "# TYPE {name}{suffix} {kind}");
        } else if !line.starts_with('#') {
            text.push_str(line);
            text.push('\n');
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMETHEUS_2: &str =
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
        version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    const PROMETHEUS_3: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,\
        application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,\
        text/plain;version=0.0.4;q=0.2,*/*;q=0.1";

    fn negotiate(accept: &[&str]) -> Format {
        Format::negotiate(accept.iter().copied())
    }

    #[test]
    fn prometheus_gets_openmetrics_and_everyone_else_text() {
        use Format::*;
        for (accept, expected) in [
            (&[][..], Text),
            (&[PROMETHEUS_2], OpenMetrics),
            (&[PROMETHEUS_3], OpenMetrics),
            // Prometheus 2.5 to 2.4x.
            (
                &["application/openmetrics-text; version=0.0.1,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"],
                OpenMetrics,
            ),
            (&["Application/OpenMetrics-Text"], OpenMetrics),
            (&["text/plain;version=0.0.4"], Text),
            (&["*/*"], Text),
            (&["application/json"], Text),
            (&[""], Text),
            (&["application/openmetrics-text;q=0"], Text),
            (&["application/openmetrics-text;q=0.5, text/plain"], Text),
            (&["text/plain;q=0.5, application/openmetrics-text"], OpenMetrics),
            (&["text/plain;q=0.2", "application/openmetrics-text;q=0.3"], OpenMetrics),
            (&["application/openmetrics-text;version=2.0.0"], Text),
            (&["application/openmetrics-text;q=high"], Text),
        ] {
            assert_eq!(negotiate(accept), expected, "{accept:?}");
        }
    }

    #[test]
    fn text_names_every_family_as_its_samples_do() {
        let openmetrics = "\
# HELP requests Requests answered.
# TYPE requests counter
requests_total{path=\"/livez\",code=\"200\"} 3
# HELP up 1 while up.
# TYPE up gauge
up 1
# HELP took_seconds Duration.
# TYPE took_seconds histogram
# UNIT took_seconds seconds
took_seconds_sum 0.5
took_seconds_count 1
took_seconds_bucket{le=\"0.25\"} 0
took_seconds_bucket{le=\"+Inf\"} 1
# HELP build Build.
# TYPE build info
build_info{version=\"1\"} 1
# HELP odd Odd.
# TYPE odd unknown
odd 2
# EOF
";
        let expected = "\
# HELP requests_total Requests answered.
# TYPE requests_total counter
requests_total{path=\"/livez\",code=\"200\"} 3
# HELP up 1 while up.
# TYPE up gauge
up 1
# HELP took_seconds Duration.
# TYPE took_seconds histogram
took_seconds_sum 0.5
took_seconds_count 1
took_seconds_bucket{le=\"0.25\"} 0
took_seconds_bucket{le=\"+Inf\"} 1
# HELP build_info Build.
# TYPE build_info gauge
build_info{version=\"1\"} 1
# HELP odd Odd.
# TYPE odd untyped
odd 2
";
        assert_eq!(to_text(openmetrics), expected);
    }
}
