from django.core.management.base import BaseCommand

from audit.checkpoint_writer import checkpoint_write


class Command(BaseCommand):
    help = "Sign the audit chain's head as a new checkpoint now (what the periodic task does)."

    def handle(self, *args, **options):
        checkpoint = checkpoint_write()
        if checkpoint is None:
            self.stdout.write("Nothing new since the last checkpoint.")
        else:
            self.stdout.write(f"Checkpoint {checkpoint.number} at sequence {checkpoint.sequence}")
