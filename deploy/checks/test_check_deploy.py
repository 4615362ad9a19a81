"""Tests of check_deploy.py's parsing rules: `python3 -m unittest discover -s deploy/checks`."""

import tempfile
import unittest
from pathlib import Path

import check_deploy as check


class PromqlMetricNames(unittest.TestCase):
    def test_functions_keywords_labels_and_durations_are_not_metrics(self):
        expr = (
            "histogram_quantile(0.99, sum by (le, target) "
            '(rate(outbox_delivery_latency_seconds_bucket{target="onec"}[5m])))'
        )
        self.assertEqual(check.promql_metric_names(expr), {"outbox_delivery_latency_seconds_bucket"})

    def test_binary_operators_and_vector_matching(self):
        expr = (
            'min by (instance) (relay_database_up) == 0 or on (instance) '
            'sum by (instance) (rate(http_requests_total{status="503"}[2m])) > 0 '
            "unless ignoring (job) group_left (x) absent_metric offset 5m"
        )
        self.assertEqual(
            check.promql_metric_names(expr),
            {"relay_database_up", "http_requests_total", "absent_metric"},
        )

    def test_grafana_variables_and_strings_are_ignored(self):
        expr = 'sum(rate(webhook_deliveries_total{outcome=~"bad|stale"}[$__rate_interval])) * $factor'
        self.assertEqual(check.promql_metric_names(expr), {"webhook_deliveries_total"})

    def test_aggregation_with_trailing_by_clause(self):
        self.assertEqual(check.promql_metric_names("sum(up) by (job) < 1 or vector(0)"), {"up"})


class ExportedMetrics(unittest.TestCase):
    def test_macros_are_read_with_histograms_rendered_as_the_recorder_does(self):
        with tempfile.TemporaryDirectory() as directory:
            root = Path(directory)
            (root / "crates/telemetry/src").mkdir(parents=True)
            (root / "crates/telemetry/src/lib.rs").write_text(
                'builder.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), B)'
            )
            (root / "crates/x/src").mkdir(parents=True)
            (root / "crates/x/src/lib.rs").write_text(
                'metrics::counter!("a_total", "k" => v).increment(1);\n'
                'metrics::histogram!(\n    "b_seconds"\n).record(1.0);\n'
                'histogram!("c_bytes").record(1.0);\n'
                '// metrics::gauge!("commented_out").set(1.0);\n'
                "metrics::gauge!(NAME).set(1.0);\n"
            )
            findings = check.Findings()
            names = check.exported_metrics(root, findings)
        self.assertEqual(
            names,
            {"a_total", "b_seconds_bucket", "b_seconds_sum", "b_seconds_count", "c_bytes", "c_bytes_sum", "c_bytes_count"},
        )
        self.assertEqual(len(findings.items), 1)
        self.assertIn("NAME", findings.items[0])


class Secrets(unittest.TestCase):
    def test_literals_are_findings_and_interpolations_are_not(self):
        findings = check.Findings()
        check.secret_literals(
            "x",
            {
                "DB_PASS": "${DB_PASS:?set it}",
                "CHATWOOT_API_TOKEN": "${CHATWOOT_API_TOKEN:-sim-chatwoot-token}",
                "ONEC_PASSWORD": "hunter2",
                "SERVICE_TOKENS": "${SERVICE_TOKENS:-site:0123456789abcdef}",
                "LOG_FORMAT": "json",
            },
            findings,
        )
        self.assertEqual(len(findings.items), 2, findings.items)


class Durations(unittest.TestCase):
    def test_compose_durations(self):
        self.assertEqual(check.duration_seconds("45s"), 45)
        self.assertEqual(check.duration_seconds("1m30s"), 90)
        self.assertEqual(check.duration_seconds("500ms"), 0.5)


class Anchors(unittest.TestCase):
    def test_github_anchors(self):
        self.assertEqual(check.github_anchor(" OutboxDeadEntries"), "outboxdeadentries")
        self.assertEqual(check.github_anchor(" Back up and restore"), "back-up-and-restore")


if __name__ == "__main__":
    unittest.main()
