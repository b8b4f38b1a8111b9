build/notifier/hub.o: notifier/hub.c notifier/hub.h
notifier/hub.h:
