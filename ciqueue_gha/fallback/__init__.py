"""The static fallback: a build without the queue (no Redis URL, as on a fork's pull request,
or a Redis unreachable at the first contact).

Each worker runs a deterministic share of the suite (split.py), computed alike by every
worker from the same collection and recorded durations, and delivers its results as a file
(delivery.py); the summary gathers the deliveries, from a directory or from the workflow
run's artifacts (artifacts.py), and reports them as it reports a build from Redis
(gather.py). Every line and report says loudly that the build ran without the queue.
"""
