build/supervisor/pgembed.o: supervisor/pgembed.c supervisor/pgembed.h \
 common/config.h common/log.h common/proc.h common/config.h
supervisor/pgembed.h:
common/config.h:
common/log.h:
common/proc.h:
common/config.h:
