"""The text the hostile suite's tests put wherever a test can put text: every way a line of a
log could become a workflow command, and the characters the escaping must keep."""

#: Lines the runner would run if they reached its log as they are.
HOSTILE = (
    "\n::stop-commands::x"
    "\n::add-mask::the"
    "\n::error title=Forged,file=check_hostile.py,line=1::forged error"
    "\n   ::warning::indented"
    "\r::notice::after a lone CR"
    "\nin the middle ##[error]old syntax"
    "\n::set-output name=conclusion::success"
    "\n::x::"
    "\n100% %0A %25 done"
)

#: Parts of it that must reach the job summary and the check run as written.
MARKERS = ("::add-mask::the", "forged error", "##[error]old syntax", "100% %0A %25 done")

#: Test ids that hold commands (pytest keeps ``:``, ``#``, ``[`` and ``%`` in an id).
IDS = ("::error::in-id", "##[error]in-id", "%0A::warning::in-id")
