"""Catalog upstream: 120 realistic tools across 12 domains, Streamable HTTP at /mcp, Bearer auth.

    python tests/mcp_servers/catalog.py --port 8101 --token s3cret [--page-size 50]

Every request must carry `Authorization: Bearer <token>` (else 401), so a gateway's
credential injection can be tested. Each tool's input schema has 1-4 typed, described
parameters (some required, the rest with defaults); calling any tool returns one text
block, deterministic: `{"tool": <name>, "arguments": <arguments exactly as sent>}` as
JSON with sorted keys. Arguments are validated against the schema first (a wrong type
gives an isError result naming the field).

`--page-size N` (N > 0) makes tools/list paginate: N tools per page, opaque `nextCursor`
values `page:<offset>`; an unknown cursor is a JSON-RPC INVALID_PARAMS error. Without it
the whole catalog comes in one page (MCPServer's default).

Built with the SDK's high-level `MCPServer` (the 2.x name of FastMCP). The tool
functions are generated: each gets a real signature (Annotated types with
pydantic Field descriptions), so MCPServer derives the JSON schemas itself.
"""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from mcp_types import INVALID_PARAMS, ListToolsResult, TextContent
from pydantic import Field

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import HeaderAuth, base_args, serve  # noqa: E402

REQ = object()  # marks a required parameter

# (name, description, [(param, type, description, default-or-REQ), ...])
ToolSpec = tuple[str, str, list[tuple[str, Any, str, Any]]]

_S, _I, _F, _B, _L = str, int, float, bool, list[str]

REPO = ("repo", _S, "Repository in owner/name form, e.g. octo-org/api", REQ)

DOMAINS: dict[str, list[ToolSpec]] = {
    "github": [
        ("github_create_issue", "Create a new issue in a GitHub repository.", [
            REPO,
            ("title", _S, "Issue title", REQ),
            ("body", _S, "Issue body in GitHub-flavoured Markdown", ""),
            ("labels", _L, "Labels to apply, e.g. ['bug', 'p1']", []),
        ]),
        ("github_close_issue", "Close an open issue, optionally recording why.", [
            REPO,
            ("issue_number", _I, "Issue number within the repository", REQ),
            ("reason", Literal["completed", "not_planned"], "Why the issue is being closed", "completed"),
        ]),
        ("github_comment_on_issue", "Add a comment to an issue or pull request.", [
            REPO,
            ("issue_number", _I, "Issue or pull request number", REQ),
            ("body", _S, "Comment text in Markdown", REQ),
        ]),
        ("github_list_pull_requests", "List pull requests in a repository, newest first.", [
            REPO,
            ("state", Literal["open", "closed", "all"], "Filter by pull request state", "open"),
            ("limit", _I, "Maximum number of pull requests to return", 30),
        ]),
        ("github_merge_pull_request", "Merge a pull request once its checks have passed.", [
            REPO,
            ("pr_number", _I, "Pull request number", REQ),
            ("merge_method", Literal["merge", "squash", "rebase"], "How to merge the commits", "squash"),
        ]),
        ("github_get_file_contents", "Read a file from a repository at a branch, tag or commit.", [
            REPO,
            ("path", _S, "Path of the file inside the repository", REQ),
            ("ref", _S, "Branch, tag or commit SHA (default branch if empty)", ""),
        ]),
        ("github_search_code", "Search code across GitHub repositories.", [
            ("query", _S, "GitHub code search query, e.g. 'addClass repo:jquery/jquery'", REQ),
            ("language", _S, "Restrict results to one programming language", ""),
            ("limit", _I, "Maximum number of matches to return", 20),
        ]),
        ("github_create_branch", "Create a new branch from an existing ref.", [
            REPO,
            ("branch", _S, "Name of the branch to create", REQ),
            ("from_ref", _S, "Ref to branch from (default branch if empty)", ""),
        ]),
        ("github_list_workflow_runs", "List recent GitHub Actions workflow runs.", [
            REPO,
            ("workflow", _S, "Workflow file name, e.g. ci.yml (all workflows if empty)", ""),
            ("status", Literal["queued", "in_progress", "completed"], "Filter by run status", "completed"),
        ]),
        ("github_request_review", "Request reviews on a pull request from users.", [
            REPO,
            ("pr_number", _I, "Pull request number", REQ),
            ("reviewers", _L, "GitHub logins of the requested reviewers", REQ),
        ]),
    ],
    "jira": [
        ("jira_create_ticket", "Create a Jira issue in a project.", [
            ("project_key", _S, "Project key, e.g. OPS", REQ),
            ("summary", _S, "One-line summary of the issue", REQ),
            ("issue_type", Literal["Bug", "Task", "Story", "Epic"], "Issue type", "Task"),
            ("description", _S, "Longer description in Jira wiki markup", ""),
        ]),
        ("jira_transition_ticket", "Move a Jira issue through its workflow, e.g. to In Progress or Done.", [
            ("ticket_key", _S, "Issue key, e.g. OPS-1234", REQ),
            ("transition", _S, "Name of the workflow transition, e.g. 'In Progress'", REQ),
            ("comment", _S, "Comment to add with the transition", ""),
        ]),
        ("jira_assign_ticket", "Assign a Jira issue to a user.", [
            ("ticket_key", _S, "Issue key, e.g. OPS-1234", REQ),
            ("assignee", _S, "Account id or email of the new assignee", REQ),
        ]),
        ("jira_add_comment", "Add a comment to a Jira issue.", [
            ("ticket_key", _S, "Issue key, e.g. OPS-1234", REQ),
            ("body", _S, "Comment text", REQ),
        ]),
        ("jira_search_tickets", "Search Jira issues with a JQL query.", [
            ("jql", _S, "JQL query, e.g. 'project = OPS AND status = Open'", REQ),
            ("max_results", _I, "Maximum number of issues to return", 50),
        ]),
        ("jira_get_ticket", "Fetch one Jira issue with its fields.", [
            ("ticket_key", _S, "Issue key, e.g. OPS-1234", REQ),
            ("include_comments", _B, "Also return the issue's comments", False),
        ]),
        ("jira_update_priority", "Change the priority of a Jira issue.", [
            ("ticket_key", _S, "Issue key, e.g. OPS-1234", REQ),
            ("priority", Literal["Highest", "High", "Medium", "Low", "Lowest"], "New priority", REQ),
        ]),
        ("jira_log_work", "Log time spent on a Jira issue.", [
            ("ticket_key", _S, "Issue key, e.g. OPS-1234", REQ),
            ("time_spent_minutes", _I, "Minutes of work to log", REQ),
            ("note", _S, "Work description for the log entry", ""),
        ]),
        ("jira_link_tickets", "Create a link between two Jira issues.", [
            ("from_key", _S, "Key of the source issue", REQ),
            ("to_key", _S, "Key of the target issue", REQ),
            ("link_type", Literal["blocks", "relates to", "duplicates"], "Kind of link", "relates to"),
        ]),
        ("jira_list_sprints", "List the sprints of a Jira Scrum board.", [
            ("board_id", _I, "Numeric id of the board", REQ),
            ("state", Literal["active", "future", "closed"], "Filter by sprint state", "active"),
        ]),
    ],
    "slack": [
        ("slack_post_message", "Post a message to a Slack channel or thread.", [
            ("channel", _S, "Channel id or name, e.g. #deploys", REQ),
            ("text", _S, "Message text (Slack mrkdwn)", REQ),
            ("thread_ts", _S, "Timestamp of the parent message to reply in a thread", ""),
        ]),
        ("slack_list_channels", "List the Slack channels visible to the bot.", [
            ("include_archived", _B, "Include archived channels", False),
            ("limit", _I, "Maximum number of channels to return", 100),
        ]),
        ("slack_add_reaction", "Add an emoji reaction to a Slack message.", [
            ("channel", _S, "Channel id containing the message", REQ),
            ("timestamp", _S, "Timestamp (ts) of the message", REQ),
            ("emoji", _S, "Emoji name without colons, e.g. white_check_mark", REQ),
        ]),
        ("slack_upload_file", "Upload a text file to a Slack channel.", [
            ("channel", _S, "Channel id or name", REQ),
            ("filename", _S, "File name shown in Slack", REQ),
            ("content", _S, "File contents as text", REQ),
            ("title", _S, "Title of the file", ""),
        ]),
        ("slack_search_messages", "Search messages across the Slack workspace.", [
            ("query", _S, "Search query, supports modifiers like in:#channel from:@user", REQ),
            ("count", _I, "Number of results per page", 20),
        ]),
        ("slack_set_channel_topic", "Set the topic of a Slack channel.", [
            ("channel", _S, "Channel id", REQ),
            ("topic", _S, "New channel topic", REQ),
        ]),
        ("slack_invite_user", "Invite users to a Slack channel.", [
            ("channel", _S, "Channel id", REQ),
            ("user_ids", _L, "Slack user ids to invite", REQ),
        ]),
        ("slack_get_user_profile", "Get a Slack user's profile: name, title, time zone, status.", [
            ("user_id", _S, "Slack user id, e.g. U024BE7LH", REQ),
        ]),
        ("slack_schedule_message", "Schedule a Slack message for later delivery.", [
            ("channel", _S, "Channel id or name", REQ),
            ("text", _S, "Message text", REQ),
            ("post_at", _I, "Unix timestamp (seconds) at which to post", REQ),
        ]),
        ("slack_get_thread_replies", "Read the replies in a Slack thread.", [
            ("channel", _S, "Channel id", REQ),
            ("thread_ts", _S, "Timestamp of the thread's parent message", REQ),
            ("limit", _I, "Maximum number of replies", 50),
        ]),
    ],
    "calendar": [
        ("calendar_create_event", "Create a calendar event and invite attendees.", [
            ("title", _S, "Event title", REQ),
            ("start", _S, "Start time, ISO 8601 with offset, e.g. 2025-03-14T09:00:00+01:00", REQ),
            ("end", _S, "End time, ISO 8601 with offset", REQ),
            ("attendees", _L, "Email addresses of the attendees", []),
        ]),
        ("calendar_list_events", "List events in a time window.", [
            ("time_min", _S, "Window start, ISO 8601", REQ),
            ("time_max", _S, "Window end, ISO 8601", REQ),
            ("calendar_id", _S, "Calendar to read (primary calendar if empty)", "primary"),
        ]),
        ("calendar_update_event", "Change the title or time of an existing event.", [
            ("event_id", _S, "Id of the event", REQ),
            ("title", _S, "New title (unchanged if empty)", ""),
            ("start", _S, "New start time, ISO 8601 (unchanged if empty)", ""),
            ("end", _S, "New end time, ISO 8601 (unchanged if empty)", ""),
        ]),
        ("calendar_delete_event", "Delete a calendar event.", [
            ("event_id", _S, "Id of the event", REQ),
            ("notify_attendees", _B, "Send cancellation emails to attendees", True),
        ]),
        ("calendar_find_free_slots", "Find time slots when all attendees are free.", [
            ("attendees", _L, "Email addresses to check", REQ),
            ("duration_minutes", _I, "Length of the meeting in minutes", REQ),
            ("within_days", _I, "Search window from today, in days", 7),
        ]),
        ("calendar_respond_to_invite", "Accept, decline or tentatively accept an invitation.", [
            ("event_id", _S, "Id of the event", REQ),
            ("response", Literal["accepted", "declined", "tentative"], "Your response", REQ),
        ]),
        ("calendar_add_attendee", "Add an attendee to an existing event.", [
            ("event_id", _S, "Id of the event", REQ),
            ("email", _S, "Email address of the attendee", REQ),
            ("optional", _B, "Mark the attendee as optional", False),
        ]),
        ("calendar_get_event", "Get the details of one calendar event.", [
            ("event_id", _S, "Id of the event", REQ),
        ]),
        ("calendar_set_reminder", "Set a reminder on a calendar event.", [
            ("event_id", _S, "Id of the event", REQ),
            ("minutes_before", _I, "How many minutes before the start to remind", REQ),
            ("method", Literal["email", "popup"], "How to deliver the reminder", "popup"),
        ]),
        ("calendar_list_calendars", "List the calendars the user can see.", [
            ("show_hidden", _B, "Include calendars hidden from the list", False),
        ]),
    ],
    "s3": [
        ("s3_list_objects", "List objects in an S3 bucket under a prefix.", [
            ("bucket", _S, "Bucket name", REQ),
            ("prefix", _S, "Key prefix to list under", ""),
            ("max_keys", _I, "Maximum number of keys to return", 1000),
        ]),
        ("s3_get_object", "Download an object's contents from S3.", [
            ("bucket", _S, "Bucket name", REQ),
            ("key", _S, "Object key", REQ),
            ("version_id", _S, "Object version (latest if empty)", ""),
        ]),
        ("s3_put_object", "Upload text content to an S3 object.", [
            ("bucket", _S, "Bucket name", REQ),
            ("key", _S, "Object key", REQ),
            ("body", _S, "Content to store", REQ),
            ("content_type", _S, "MIME type of the content", "text/plain"),
        ]),
        ("s3_delete_object", "Delete an object from S3.", [
            ("bucket", _S, "Bucket name", REQ),
            ("key", _S, "Object key", REQ),
        ]),
        ("s3_copy_object", "Copy an object to another bucket or key.", [
            ("source_bucket", _S, "Bucket to copy from", REQ),
            ("source_key", _S, "Key to copy from", REQ),
            ("dest_bucket", _S, "Bucket to copy to", REQ),
            ("dest_key", _S, "Key to copy to", REQ),
        ]),
        ("s3_generate_presigned_url", "Create a time-limited presigned URL for an object.", [
            ("bucket", _S, "Bucket name", REQ),
            ("key", _S, "Object key", REQ),
            ("expires_in_seconds", _I, "Validity of the URL in seconds", 3600),
            ("method", Literal["GET", "PUT"], "HTTP method the URL allows", "GET"),
        ]),
        ("s3_list_buckets", "List the S3 buckets in the account.", [
            ("region", _S, "Only buckets in this AWS region (all if empty)", ""),
        ]),
        ("s3_head_object", "Get an object's metadata (size, ETag, content type) without its body.", [
            ("bucket", _S, "Bucket name", REQ),
            ("key", _S, "Object key", REQ),
        ]),
        ("s3_set_object_tags", "Replace the tag set of an S3 object.", [
            ("bucket", _S, "Bucket name", REQ),
            ("key", _S, "Object key", REQ),
            ("tags", _L, "Tags as key=value strings, e.g. ['env=prod']", REQ),
        ]),
        ("s3_get_bucket_policy", "Read the bucket policy document of an S3 bucket.", [
            ("bucket", _S, "Bucket name", REQ),
        ]),
    ],
    "postgres": [
        ("postgres_run_query", "Run a read-only SQL query against the PostgreSQL database.", [
            ("sql", _S, "SQL statement; use $1, $2 ... for parameters", REQ),
            ("params", _L, "Values for the statement's positional parameters", []),
            ("timeout_ms", _I, "Statement timeout in milliseconds", 5000),
        ]),
        ("postgres_list_tables", "List the tables in a schema.", [
            ("schema", _S, "Schema name", "public"),
        ]),
        ("postgres_describe_table", "Describe a table's columns, types, defaults and constraints.", [
            ("table", _S, "Table name", REQ),
            ("schema", _S, "Schema name", "public"),
        ]),
        ("postgres_explain_query", "Show the query plan for a SQL statement.", [
            ("sql", _S, "SQL statement to explain", REQ),
            ("analyze", _B, "Run EXPLAIN ANALYZE (executes the statement)", False),
        ]),
        ("postgres_list_databases", "List the databases on the server.", [
            ("include_templates", _B, "Include template databases", False),
        ]),
        ("postgres_get_table_size", "Get the on-disk size of a table including indexes and TOAST.", [
            ("table", _S, "Schema-qualified or plain table name", REQ),
        ]),
        ("postgres_list_indexes", "List the indexes defined on a table.", [
            ("table", _S, "Table name", REQ),
        ]),
        ("postgres_kill_query", "Cancel or terminate a running backend by PID.", [
            ("pid", _I, "Backend process id from pg_stat_activity", REQ),
            ("terminate", _B, "Terminate the backend instead of cancelling its query", False),
        ]),
        ("postgres_list_active_queries", "List queries currently running, longest first.", [
            ("min_duration_ms", _I, "Only queries running at least this long", 0),
        ]),
        ("postgres_vacuum_table", "Run VACUUM on a table.", [
            ("table", _S, "Table name", REQ),
            ("full", _B, "Run VACUUM FULL (rewrites the table, takes a lock)", False),
            ("analyze", _B, "Also update planner statistics", True),
        ]),
    ],
    "weather": [
        ("weather_forecast", "Daily weather forecast for a location.", [
            ("location", _S, "City name or 'lat,lon', e.g. 'Berlin' or '52.52,13.40'", REQ),
            ("days", _I, "Number of days to forecast (1-14)", 3),
            ("units", Literal["metric", "imperial"], "Unit system for temperatures and wind", "metric"),
        ]),
        ("weather_current_conditions", "Current temperature, wind, humidity and sky for a location.", [
            ("location", _S, "City name or 'lat,lon'", REQ),
            ("units", Literal["metric", "imperial"], "Unit system", "metric"),
        ]),
        ("weather_hourly_forecast", "Hour-by-hour forecast for the next hours.", [
            ("location", _S, "City name or 'lat,lon'", REQ),
            ("hours", _I, "Number of hours ahead (1-48)", 24),
        ]),
        ("weather_air_quality", "Air quality index and pollutant levels for a location.", [
            ("location", _S, "City name or 'lat,lon'", REQ),
        ]),
        ("weather_severe_alerts", "Active severe weather alerts for a region.", [
            ("region", _S, "Country or region code, e.g. US-CA", REQ),
            ("severity", Literal["minor", "moderate", "severe", "extreme"], "Minimum severity", "moderate"),
        ]),
        ("weather_historical", "Observed weather on a past date.", [
            ("location", _S, "City name or 'lat,lon'", REQ),
            ("date", _S, "Date in YYYY-MM-DD", REQ),
        ]),
        ("weather_uv_index", "UV index forecast for coordinates.", [
            ("latitude", _F, "Latitude in decimal degrees", REQ),
            ("longitude", _F, "Longitude in decimal degrees", REQ),
        ]),
        ("weather_sunrise_sunset", "Sunrise, sunset and day length for a location.", [
            ("location", _S, "City name or 'lat,lon'", REQ),
            ("date", _S, "Date in YYYY-MM-DD (today if empty)", ""),
        ]),
        ("weather_precipitation_radar", "Link to a precipitation radar tile around coordinates.", [
            ("latitude", _F, "Latitude in decimal degrees", REQ),
            ("longitude", _F, "Longitude in decimal degrees", REQ),
            ("zoom", _I, "Map zoom level (3-12)", 7),
        ]),
        ("weather_marine_forecast", "Wave height, swell and sea temperature forecast.", [
            ("latitude", _F, "Latitude in decimal degrees", REQ),
            ("longitude", _F, "Longitude in decimal degrees", REQ),
            ("days", _I, "Number of days to forecast", 3),
        ]),
    ],
    "finance": [
        ("currency_convert", "Convert an amount between two currencies at the latest rate.", [
            ("amount", _F, "Amount in the source currency", REQ),
            ("from_currency", _S, "ISO 4217 code of the source currency, e.g. EUR", REQ),
            ("to_currency", _S, "ISO 4217 code of the target currency, e.g. USD", REQ),
        ]),
        ("currency_exchange_rates", "Latest exchange rates against a base currency.", [
            ("base", _S, "ISO 4217 base currency", "USD"),
            ("symbols", _L, "Currencies to include (all if empty)", []),
        ]),
        ("currency_historical_rate", "Exchange rate between two currencies on a past date.", [
            ("base", _S, "ISO 4217 base currency", REQ),
            ("target", _S, "ISO 4217 target currency", REQ),
            ("date", _S, "Date in YYYY-MM-DD", REQ),
        ]),
        ("currency_list_supported", "List the supported currency codes and names.", [
            ("include_crypto", _B, "Include cryptocurrencies", False),
        ]),
        ("stock_get_quote", "Latest quote for a stock ticker: price, change, volume.", [
            ("symbol", _S, "Ticker symbol, e.g. AAPL", REQ),
        ]),
        ("stock_price_history", "Historical OHLC prices for a stock.", [
            ("symbol", _S, "Ticker symbol", REQ),
            ("start_date", _S, "First day, YYYY-MM-DD", REQ),
            ("end_date", _S, "Last day, YYYY-MM-DD", REQ),
            ("interval", Literal["1d", "1wk", "1mo"], "Bar interval", "1d"),
        ]),
        ("crypto_get_price", "Current price of a cryptocurrency.", [
            ("coin_id", _S, "Coin id, e.g. bitcoin", REQ),
            ("vs_currency", _S, "Quote currency", "usd"),
        ]),
        ("finance_calculate_loan_payment", "Monthly payment for an amortising loan.", [
            ("principal", _F, "Loan amount", REQ),
            ("annual_rate_percent", _F, "Nominal annual interest rate in percent", REQ),
            ("term_months", _I, "Loan term in months", REQ),
        ]),
        ("finance_compound_interest", "Future value of a deposit with compound interest.", [
            ("principal", _F, "Initial deposit", REQ),
            ("annual_rate_percent", _F, "Annual interest rate in percent", REQ),
            ("years", _I, "Number of years", REQ),
            ("compounds_per_year", _I, "Compounding periods per year", 12),
        ]),
        ("invoice_create", "Create a customer invoice in the billing system.", [
            ("customer_id", _S, "Billing customer id", REQ),
            ("amount", _F, "Invoice total", REQ),
            ("currency", _S, "ISO 4217 currency code", "EUR"),
            ("due_date", _S, "Due date YYYY-MM-DD (30 days from today if empty)", ""),
        ]),
    ],
    "language": [
        ("translate_text", "Translate text into another language.", [
            ("text", _S, "Text to translate", REQ),
            ("target_language", _S, "BCP 47 code of the target language, e.g. de", REQ),
            ("source_language", _S, "BCP 47 code of the source language (detected if empty)", ""),
        ]),
        ("translate_detect_language", "Detect the language of a text.", [
            ("text", _S, "Text to analyse", REQ),
        ]),
        ("translate_list_languages", "List the languages available for translation.", [
            ("display_language", _S, "Language in which to show the language names", "en"),
        ]),
        ("text_summarize", "Summarise a long text into a few sentences.", [
            ("text", _S, "Text to summarise", REQ),
            ("max_sentences", _I, "Maximum sentences in the summary", 3),
        ]),
        ("text_sentiment", "Classify the sentiment of a text as positive, negative or neutral.", [
            ("text", _S, "Text to classify", REQ),
        ]),
        ("text_extract_entities", "Extract named entities (people, places, organisations, dates).", [
            ("text", _S, "Text to analyse", REQ),
            ("entity_types", _L, "Entity types to keep, e.g. ['PERSON', 'ORG'] (all if empty)", []),
        ]),
        ("text_count_words", "Count words, sentences and characters in a text.", [
            ("text", _S, "Text to count", REQ),
        ]),
        ("text_spellcheck", "Find spelling mistakes and suggest corrections.", [
            ("text", _S, "Text to check", REQ),
            ("language", _S, "BCP 47 language code", "en-US"),
        ]),
        ("text_redact_pii", "Replace personal data (emails, phone numbers, names) in a text.", [
            ("text", _S, "Text to redact", REQ),
            ("replacement", _S, "String that replaces each match", "[REDACTED]"),
        ]),
        ("translate_document", "Translate a whole document, keeping its layout.", [
            ("document_url", _S, "URL of the document (PDF, DOCX, PPTX)", REQ),
            ("target_language", _S, "BCP 47 code of the target language", REQ),
            ("preserve_formatting", _B, "Keep fonts and layout", True),
        ]),
    ],
    "pdf": [
        ("pdf_extract_text", "Extract the text of a PDF document.", [
            ("file_url", _S, "URL or path of the PDF", REQ),
            ("pages", _S, "Page selection like '1-3,5' (all pages if empty)", ""),
        ]),
        ("pdf_merge", "Merge several PDFs into one, in the given order.", [
            ("file_urls", _L, "URLs or paths of the PDFs to merge", REQ),
            ("output_name", _S, "File name of the merged PDF", REQ),
        ]),
        ("pdf_split", "Split a PDF into several documents by page ranges.", [
            ("file_url", _S, "URL or path of the PDF", REQ),
            ("ranges", _L, "Page ranges, one output per range, e.g. ['1-2', '3-10']", REQ),
        ]),
        ("pdf_get_metadata", "Read a PDF's metadata: title, author, page count, producer.", [
            ("file_url", _S, "URL or path of the PDF", REQ),
        ]),
        ("pdf_extract_tables", "Extract tables from a PDF as CSV.", [
            ("file_url", _S, "URL or path of the PDF", REQ),
            ("page", _I, "Page to read (0: all pages)", 0),
        ]),
        ("pdf_fill_form", "Fill the form fields of a PDF form.", [
            ("file_url", _S, "URL or path of the PDF form", REQ),
            ("fields", _L, "Field values as name=value strings", REQ),
        ]),
        ("pdf_add_watermark", "Stamp a text watermark on every page.", [
            ("file_url", _S, "URL or path of the PDF", REQ),
            ("text", _S, "Watermark text, e.g. CONFIDENTIAL", REQ),
            ("opacity", _F, "Opacity between 0 and 1", 0.3),
        ]),
        ("pdf_compress", "Reduce a PDF's file size.", [
            ("file_url", _S, "URL or path of the PDF", REQ),
            ("quality", Literal["low", "medium", "high"], "Image quality to keep", "medium"),
        ]),
        ("pdf_to_images", "Render PDF pages to images.", [
            ("file_url", _S, "URL or path of the PDF", REQ),
            ("dpi", _I, "Resolution in dots per inch", 150),
            ("format", Literal["png", "jpeg"], "Image format", "png"),
        ]),
        ("pdf_ocr", "Run OCR on a scanned PDF and add a text layer.", [
            ("file_url", _S, "URL or path of the PDF", REQ),
            ("language", _S, "Tesseract language code, e.g. eng or deu", "eng"),
        ]),
    ],
    "email": [
        ("email_send", "Send an email.", [
            ("to", _L, "Recipient email addresses", REQ),
            ("subject", _S, "Subject line", REQ),
            ("body", _S, "Plain-text body", REQ),
            ("cc", _L, "Carbon-copy recipients", []),
        ]),
        ("email_search", "Search the mailbox.", [
            ("query", _S, "Search query, e.g. 'from:alice has:attachment'", REQ),
            ("folder", _S, "Folder to search", "INBOX"),
            ("limit", _I, "Maximum number of messages", 25),
        ]),
        ("email_get_message", "Read one email message.", [
            ("message_id", _S, "Message id", REQ),
            ("include_attachments", _B, "Return attachment contents too", False),
        ]),
        ("email_reply", "Reply to an email.", [
            ("message_id", _S, "Id of the message to reply to", REQ),
            ("body", _S, "Reply text", REQ),
            ("reply_all", _B, "Reply to all recipients", False),
        ]),
        ("email_forward", "Forward an email to other recipients.", [
            ("message_id", _S, "Id of the message to forward", REQ),
            ("to", _L, "Recipient email addresses", REQ),
            ("note", _S, "Text to put above the forwarded message", ""),
        ]),
        ("email_move_to_folder", "Move an email to another folder.", [
            ("message_id", _S, "Message id", REQ),
            ("folder", _S, "Destination folder, e.g. Archive", REQ),
        ]),
        ("email_mark_read", "Mark messages as read or unread.", [
            ("message_ids", _L, "Ids of the messages", REQ),
            ("read", _B, "True marks read, false marks unread", True),
        ]),
        ("email_list_folders", "List the mailbox folders.", [
            ("include_counts", _B, "Include unread and total counts", True),
        ]),
        ("email_create_draft", "Save an email as a draft without sending it.", [
            ("to", _L, "Recipient email addresses", REQ),
            ("subject", _S, "Subject line", REQ),
            ("body", _S, "Plain-text body", REQ),
        ]),
        ("email_delete", "Delete an email.", [
            ("message_id", _S, "Message id", REQ),
            ("permanent", _B, "Delete permanently instead of moving to Trash", False),
        ]),
    ],
    "kubernetes": [
        ("kubernetes_scale_deployment", "Scale a Kubernetes deployment to a number of replicas.", [
            ("namespace", _S, "Kubernetes namespace", REQ),
            ("deployment", _S, "Deployment name", REQ),
            ("replicas", _I, "Desired number of replicas", REQ),
        ]),
        ("kubernetes_list_pods", "List pods in a namespace.", [
            ("namespace", _S, "Kubernetes namespace", REQ),
            ("label_selector", _S, "Label selector, e.g. app=web,tier=frontend", ""),
            ("status", Literal["Running", "Pending", "Failed", "Succeeded"], "Filter by pod phase", "Running"),
        ]),
        ("kubernetes_get_pod_logs", "Fetch the logs of a pod's container.", [
            ("namespace", _S, "Kubernetes namespace", REQ),
            ("pod", _S, "Pod name", REQ),
            ("container", _S, "Container name (the only one if empty)", ""),
            ("tail_lines", _I, "Number of lines from the end", 200),
        ]),
        ("kubernetes_restart_deployment", "Rolling-restart a deployment.", [
            ("namespace", _S, "Kubernetes namespace", REQ),
            ("deployment", _S, "Deployment name", REQ),
        ]),
        ("kubernetes_describe_resource", "Describe any Kubernetes resource, like kubectl describe.", [
            ("kind", _S, "Resource kind, e.g. Service, Ingress, StatefulSet", REQ),
            ("name", _S, "Resource name", REQ),
            ("namespace", _S, "Kubernetes namespace", "default"),
        ]),
        ("kubernetes_apply_manifest", "Apply a YAML manifest to the cluster.", [
            ("manifest_yaml", _S, "One or more YAML documents", REQ),
            ("namespace", _S, "Namespace for namespaced resources", "default"),
            ("dry_run", _B, "Validate on the server without persisting", False),
        ]),
        ("kubernetes_delete_pod", "Delete a pod so its controller recreates it.", [
            ("namespace", _S, "Kubernetes namespace", REQ),
            ("pod", _S, "Pod name", REQ),
            ("grace_period_seconds", _I, "Seconds to wait before killing", 30),
        ]),
        ("kubernetes_list_namespaces", "List the namespaces in the cluster.", [
            ("label_selector", _S, "Label selector (all namespaces if empty)", ""),
        ]),
        ("kubernetes_get_events", "Recent events in a namespace, newest first.", [
            ("namespace", _S, "Kubernetes namespace", REQ),
            ("since_minutes", _I, "Only events from the last N minutes", 60),
        ]),
        ("kubernetes_rollback_deployment", "Roll a deployment back to an earlier revision.", [
            ("namespace", _S, "Kubernetes namespace", REQ),
            ("deployment", _S, "Deployment name", REQ),
            ("revision", _I, "Revision to roll back to (0: the previous one)", 0),
        ]),
    ],
}


def all_specs() -> list[ToolSpec]:
    return [spec for specs in DOMAINS.values() for spec in specs]


def make_tool_fn(name: str, params: list[tuple[str, Any, str, Any]]):
    """Build a function with a real typed signature whose body echoes the call as JSON."""

    async def tool_fn(ctx: Context, **_validated: Any) -> Any:
        raw = (ctx.request_context.params or {}).get("arguments") or {}
        text = json.dumps({"tool": name, "arguments": raw}, sort_keys=True, separators=(",", ":"))
        return [TextContent(type="text", text=text)]

    sig_params = [inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context)]
    annotations: dict[str, Any] = {"ctx": Context}
    for pname, ptype, pdesc, default in params:
        annotated = Annotated[ptype, Field(description=pdesc)]
        sig_params.append(
            inspect.Parameter(
                pname,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=annotated,
                default=inspect.Parameter.empty if default is REQ else default,
            )
        )
        annotations[pname] = annotated
    tool_fn.__signature__ = inspect.Signature(sig_params)  # type: ignore[attr-defined]
    tool_fn.__annotations__ = annotations
    tool_fn.__name__ = name
    tool_fn.__qualname__ = name
    return tool_fn


def build_server(page_size: int = 0) -> MCPServer:
    middleware = [paginate_tools(page_size)] if page_size > 0 else []
    mcp = MCPServer(
        "catalog",
        version="1.0.0",
        instructions="A catalog of 120 SaaS and infrastructure tools for gateway tests.",
        middleware=middleware,
    )
    for name, description, params in all_specs():
        mcp.add_tool(make_tool_fn(name, params), name=name, description=description, structured_output=False)
    return mcp


def paginate_tools(page_size: int):
    """Server middleware that slices MCPServer's one-page tools/list into pages of `page_size`."""

    async def middleware(ctx, call_next):
        result = await call_next(ctx)
        if ctx.method != "tools/list" or ctx.request_id is None:
            return result
        listing = result if isinstance(result, ListToolsResult) else ListToolsResult.model_validate(result)
        cursor = (ctx.params or {}).get("cursor")
        offset = 0
        if cursor is not None:
            if not (isinstance(cursor, str) and cursor.startswith("page:") and cursor[5:].isdigit()):
                raise MCPError(code=INVALID_PARAMS, message=f"Invalid cursor: {cursor!r}")
            offset = int(cursor[5:])
        page = listing.tools[offset : offset + page_size]
        end = offset + page_size
        next_cursor = f"page:{end}" if end < len(listing.tools) else None
        return ListToolsResult(tools=page, next_cursor=next_cursor)

    return middleware


def main() -> None:
    parser = base_args(__doc__.splitlines()[0])
    parser.add_argument("--token", required=True, help="Bearer token every request must carry")
    parser.add_argument("--page-size", type=int, default=0, help="tools/list page size (0: no pagination)")
    args = parser.parse_args()
    mcp = build_server(args.page_size)
    app = mcp.streamable_http_app(
        streamable_http_path="/mcp",
        # A gateway may forward its own Host/Origin; the upstream should not second-guess them.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    serve(
        HeaderAuth(app, "authorization", f"Bearer {args.token}", www_authenticate='Bearer realm="catalog"'),
        args.port,
        log_level=args.log_level,
    )


if __name__ == "__main__":
    main()
