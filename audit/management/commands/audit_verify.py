from django.core.management.base import BaseCommand

from audit.verify import verify_chain


class Command(BaseCommand):
    help = "Walk the audit hash chain; print 'OK <n> events' or the first broken sequence number. Exit 1 if broken."

    def handle(self, *args, **options):
        report = verify_chain()
        if report.ok:
            self.stdout.write(f"OK {report.events} events")
            return
        self.stderr.write(f"BROKEN at sequence {report.first_bad_sequence}: {report.problem}")
        raise SystemExit(1)
