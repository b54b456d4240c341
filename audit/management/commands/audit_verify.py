from django.core.management.base import BaseCommand

from audit.verify import verify_trail


class Command(BaseCommand):
    help = (
        "Verify the audit trail against the signed checkpoints in the archive: print 'OK <n> events, checkpoint "
        "<k> at sequence <s>; not yet checkpointed: <m> rows' or the first problem. Exit 1 if broken."
    )

    def handle(self, *args, **options):
        report = verify_trail()
        if report.ok:
            self.stdout.write(report.summary())
            return
        self.stderr.write(report.summary())
        raise SystemExit(1)
