"""Capture of Azure VM disks (issue #16): the Copy-VmDigitalEvidence runbook as resumable steps.

``azure_client`` holds what capture needs from Azure behind ``CaptureClient``; ``services`` the run and
its steps; ``selectors`` the permission-checked reads.
"""
